package chart_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/keyops-io/exchange-key-operator/internal/operator"
)

const managerRole = release + "-manager-role"

func TestLint(t *testing.T) {
	// Every toggle on at once, so that lint sees every template rendered.
	f := filepath.Join(t.TempDir(), "values.yaml")
	all := "serviceMonitor: {enabled: true}\nprometheusRule: {enabled: true}\ngrafanaDashboard: {enabled: true}\n"
	if err := os.WriteFile(f, []byte(all), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{}, {"--values", f}, {"--set", "watchNamespaces={team-a}"}, {"--set", "metrics.secure=false"}} {
		if out, err := helmRun(append([]string{"lint", "--strict", chartDir}, args...)...); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	}
}

// TestRender renders the chart for the default values and each toggle,
// checks what each one must (and must not) contain, and applies every
// rendering to the API server with a server-side dry run.
func TestRender(t *testing.T) {
	cases := []struct {
		name   string
		values string
		check  func(t *testing.T, objs []*unstructured.Unstructured)
	}{{
		name: "defaults",
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			d := deployment(t, objs)
			if *d.Spec.Replicas != 2 {
				t.Errorf("replicas = %d, want 2", *d.Spec.Replicas)
			}
			c := d.Spec.Template.Spec.Containers[0]
			// The image of the chart's appVersion, the tag `make image`
			// builds and releases push (test/release checks the versions).
			if want := "ghcr.io/keyops-io/exchange-key-operator:" + chartAppVersion(t); c.Image != want || strings.HasSuffix(c.Image, ":latest") {
				t.Errorf("image = %q, want %q", c.Image, want)
			}
			wantArgs(t, c.Args, "--leader-elect", "--metrics-bind-address=:8443", "--metrics-secure=true", "--health-probe-bind-address=:8081",
				"--max-concurrent-reconciles=16", "--zap-log-level=info")
			noArgPrefix(t, c.Args, "--kube-api-qps", "--kube-api-burst", "--watch-namespaces", "--key-selector", "--allow-insecure-endpoints", "--pprof-bind-address", "--exchange-rate-limit", "--allowed-endpoints")
			if len(c.Env) != 0 {
				t.Errorf("env = %v, want none", c.Env)
			}
			hardened(t, d)
			if d.Spec.Template.Spec.ServiceAccountName != release+"-controller-manager" {
				t.Errorf("serviceAccountName = %q", d.Spec.Template.Spec.ServiceAccountName)
			}
			if got := rules(t, mustFind(t, objs, "ClusterRole", managerRole)); !reflect.DeepEqual(got, configManagerRules(t)) {
				t.Errorf("ClusterRole rules differ from config/rbac/role.yaml:\n got %v\nwant %v", got, configManagerRules(t))
			}
			mustFind(t, objs, "ClusterRoleBinding", release+"-manager-rolebinding")
			mustFind(t, objs, "Role", release+"-leader-election-role")
			mustFind(t, objs, "ClusterRole", release+"-exchangeapikey-editor-role")
			mustFind(t, objs, "ClusterRole", release+"-exchangeapikey-viewer-role")
			if roles := ofKind(objs, "Role"); len(roles) != 1 {
				t.Errorf("%d Roles, want only the leader election Role", len(roles))
			}
			pdb := mustFind(t, objs, "PodDisruptionBudget", release+"-controller-manager")
			if v, _, _ := unstructured.NestedFieldNoCopy(pdb.Object, "spec", "minAvailable"); fmt.Sprint(v) != "1" {
				t.Errorf("PDB minAvailable = %v, want 1", v)
			}
			svc := mustFind(t, objs, "Service", release+"-controller-manager-metrics-service")
			selects(t, svc, d)
			// HTTPS on 8443 as in config/manager, the port named https that
			// config/prometheus/monitor.yaml scrapes.
			if !slices.Contains(c.Ports, corev1.ContainerPort{Name: "https", ContainerPort: 8443, Protocol: corev1.ProtocolTCP}) {
				t.Errorf("container ports = %v, want https 8443", c.Ports)
			}
			ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
			if got, want := fmt.Sprint(ports), "[map[name:https port:8443 protocol:TCP targetPort:https]]"; got != want {
				t.Errorf("metrics Service ports = %v, want %v", got, want)
			}
			metricsRBAC(t, objs)
			for _, crd := range configFiles(t, "config/crd/bases/*.yaml") {
				var want unstructured.Unstructured
				want.Object = decode(t, string(read(t, crd)))[0].Object
				mustFind(t, objs, "CustomResourceDefinition", want.GetName())
			}
			absent(t, objs, "ServiceMonitor", "PrometheusRule", "ConfigMap")
		},
	}, {
		name:   "serviceMonitor",
		values: "serviceMonitor: {enabled: true, interval: 1m, labels: {release: kube-prometheus-stack}}",
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			sm := mustFind(t, objs, "ServiceMonitor", release+"-controller-manager-metrics-monitor")
			if sm.GetLabels()["release"] != "kube-prometheus-stack" {
				t.Errorf("ServiceMonitor labels = %v, want release: kube-prometheus-stack", sm.GetLabels())
			}
			sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
			svc := mustFind(t, objs, "Service", release+"-controller-manager-metrics-service")
			for k, v := range sel {
				if svc.GetLabels()[k] != v {
					t.Errorf("ServiceMonitor selects %s=%s, the metrics Service has %v", k, v, svc.GetLabels())
				}
			}
			eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			want := configEndpoints(t)
			if len(eps) != len(want) {
				t.Fatalf("%d endpoints, config/prometheus/monitor.yaml has %d", len(eps), len(want))
			}
			for i := range eps {
				ep, w := eps[i].(map[string]any), want[i].(map[string]any)
				if ep["interval"] != "1m" {
					t.Errorf("endpoint %d interval = %v, want the value 1m", i, ep["interval"])
				}
				delete(ep, "interval")
				delete(w, "interval")
				if !reflect.DeepEqual(ep, w) {
					t.Errorf("endpoint %d = %v, config/prometheus/monitor.yaml has %v", i, ep, w)
				}
			}
			ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
			if port := ports[0].(map[string]any)["name"]; port != eps[0].(map[string]any)["port"] {
				t.Errorf("ServiceMonitor scrapes port %v, the Service's is %v", eps[0].(map[string]any)["port"], port)
			}
		},
	}, {
		name:   "prometheusRule",
		values: "prometheusRule: {enabled: true}",
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			pr := mustFind(t, objs, "PrometheusRule", release+"-exchangeapikey-alerts")
			want := decode(t, string(read(t, filepath.Join(repoRoot, "config/prometheus/rules.yaml"))))[0]
			if !reflect.DeepEqual(pr.Object["spec"], want.Object["spec"]) {
				t.Errorf("PrometheusRule spec differs from config/prometheus/rules.yaml")
			}
			// The alerts' templates reach Prometheus unrendered.
			if s, _ := json.Marshal(pr.Object["spec"]); !strings.Contains(string(s), "{{ $labels.namespace }}") {
				t.Errorf("the alerts' {{ $labels.* }} were rendered by helm")
			}
		},
	}, {
		name:   "grafanaDashboard",
		values: "grafanaDashboard: {enabled: true, namespace: monitoring, annotations: {grafana_folder: Operators}}",
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			cm := mustFind(t, objs, "ConfigMap", release+"-dashboard")
			if cm.GetLabels()["grafana_dashboard"] != "1" || cm.GetNamespace() != "monitoring" || cm.GetAnnotations()["grafana_folder"] != "Operators" {
				t.Errorf("dashboard ConfigMap %s/%s labels %v annotations %v", cm.GetNamespace(), cm.GetName(), cm.GetLabels(), cm.GetAnnotations())
			}
			data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
			var got, want any
			if err := json.Unmarshal([]byte(data["exchange-key-operator.json"]), &got); err != nil {
				t.Fatalf("dashboard is not JSON: %v", err)
			}
			if err := json.Unmarshal(read(t, filepath.Join(repoRoot, "config/grafana/dashboard.json")), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("dashboard differs from config/grafana/dashboard.json")
			}
		},
	}, {
		name:   "watchNamespaces",
		values: "watchNamespaces: [team-a, team-b]",
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			wantArgs(t, deployment(t, objs).Spec.Template.Spec.Containers[0].Args, "--watch-namespaces=team-a,team-b")
			// Together, the Roles and the ClusterRole grant exactly the
			// rules of config/rbac/role.yaml: the namespaced resources in
			// the watched namespaces only, the cluster-scoped ones (as the
			// API server reports them) cluster-wide.
			var clusterGrants []grant
			if cr := find(objs, "ClusterRole", release+"-manager-cluster-role"); cr != nil {
				clusterGrants = grants(rules(t, cr))
				mustFind(t, objs, "ClusterRoleBinding", release+"-manager-cluster-rolebinding")
			}
			var want []grant
			for _, g := range grants(configManagerRules(t)) {
				if namespaced(t, g) {
					want = append(want, g)
				} else if !slices.Contains(clusterGrants, g) {
					t.Errorf("%v is on a cluster-scoped resource, and the chart's ClusterRole lacks it", g)
				}
			}
			for _, g := range clusterGrants {
				if namespaced(t, g) {
					t.Errorf("namespace-scoped, the ClusterRole grants %v on a namespaced resource in every namespace", g)
				}
			}
			for _, ns := range []string{"team-a", "team-b"} {
				r := mustFindIn(t, objs, "Role", ns, managerRole)
				if got := grants(rules(t, r)); !slices.Equal(got, want) {
					t.Errorf("Role in %s grants %v, want the namespaced rules of config/rbac/role.yaml %v", ns, got, want)
				}
				rb := mustFindIn(t, objs, "RoleBinding", ns, release+"-manager-rolebinding")
				if kind, _, _ := unstructured.NestedString(rb.Object, "roleRef", "kind"); kind != "Role" {
					t.Errorf("RoleBinding in %s binds a %s", ns, kind)
				}
			}
			if find(objs, "ClusterRole", managerRole) != nil || find(objs, "ClusterRoleBinding", release+"-manager-rolebinding") != nil {
				t.Errorf("namespace-scoped: the manager still gets the cluster-wide ClusterRole or its binding")
			}
			// TokenReview and SubjectAccessReview are cluster-scoped: the
			// HTTPS metrics need the ClusterRole in this mode too.
			metricsRBAC(t, objs)
		},
	}, {
		name:   "metricsInsecure",
		values: "metrics: {secure: false, port: 8080}",
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			c := deployment(t, objs).Spec.Template.Spec.Containers[0]
			wantArgs(t, c.Args, "--metrics-bind-address=127.0.0.1:8080", "--metrics-secure=false")
			for _, p := range c.Ports {
				if p.Name != "health" {
					t.Errorf("plain HTTP metrics on loopback, but the container declares port %v", p)
				}
			}
			absent(t, objs, "Service", "ServiceMonitor")
			noMetricsRBAC(t, objs)
		},
	}, {
		// One shard of a fleet: the selector reaches the flag as one
		// argument, spaces and parentheses included.
		name:   "keySelector",
		values: `keySelector: "shard in (a,b),team!=x"`,
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			wantArgs(t, deployment(t, objs).Spec.Template.Spec.Containers[0].Args, "--key-selector=shard in (a,b),team!=x")
		},
	}, {
		name:   "pdbOff",
		values: "podDisruptionBudget: {enabled: false}",
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			absent(t, objs, "PodDisruptionBudget")
		},
	}, {
		name:   "singleReplica",
		values: "replicaCount: 1",
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			absent(t, objs, "PodDisruptionBudget") // minAvailable 1 of 1 would block drains
		},
	}, {
		name: "managerFlags",
		values: `
manager:
  maxConcurrentReconciles: 4
  kubeAPIQPS: 12.5
  kubeAPIBurst: 2000000
  exchangeRateLimits:
    okx: {requestsPerSecond: 2.5, burst: 5}
    binance: {requestsPerSecond: 10, burst: 2000000}
  allowedEndpoints: [https://proxy.example:8443/binance, https://proxy.example:8443/okx]
  allowInsecureEndpoints: true
  pprofBindAddress: 127.0.0.1:6060
  logLevel: 3
  logEncoder: console
  extraArgs: [--leader-election-namespace=elsewhere]
metrics: {enabled: false}
proxy: {httpsProxy: "http://egress.example:3128", noProxy: ".svc,10.0.0.0/8"}
extraEnv: [{name: GOMEMLIMIT, value: 200MiB}]
image: {digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
`,
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			d := deployment(t, objs)
			c := d.Spec.Template.Spec.Containers[0]
			wantArgs(t, c.Args, "--max-concurrent-reconciles=4", "--kube-api-qps=12.5", "--kube-api-burst=2000000",
				"--exchange-rate-limit=binance=10:2000000,okx=2.5:5",
				"--allowed-endpoints=https://proxy.example:8443/binance,https://proxy.example:8443/okx",
				"--allow-insecure-endpoints", "--pprof-bind-address=127.0.0.1:6060",
				"--zap-log-level=3", "--zap-encoder=console", "--leader-election-namespace=elsewhere",
				"--metrics-bind-address=0")
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			want := map[string]string{"HTTPS_PROXY": "http://egress.example:3128", "NO_PROXY": "$(KUBERNETES_SERVICE_HOST),.svc,10.0.0.0/8", "GOMEMLIMIT": "200MiB"}
			if !reflect.DeepEqual(env, want) {
				t.Errorf("env = %v, want %v", env, want)
			}
			if !strings.HasSuffix(c.Image, "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef") {
				t.Errorf("image = %q, want the digest", c.Image)
			}
			for _, p := range c.Ports {
				if p.Name == "https" {
					t.Errorf("metrics disabled, but the container still has the port")
				}
			}
			noArgPrefix(t, c.Args, "--metrics-secure")
			absent(t, objs, "Service")
			noMetricsRBAC(t, objs)
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := render(t, tc.values)
			if err != nil {
				t.Fatal(err)
			}
			objs := decode(t, out)
			tc.check(t, objs)
			bindingsResolve(t, objs)
			managerAcceptsMetricsFlags(t, objs)
			dryRun(t, objs)
		})
	}
}

// TestDryRunRefusesUnknownField shows that the dry run validates: a
// rendering with a misspelled field would fail it.
func TestDryRunRefusesUnknownField(t *testing.T) {
	out, err := render(t, "serviceMonitor: {enabled: true}")
	if err != nil {
		t.Fatal(err)
	}
	sm := find(decode(t, out), "ServiceMonitor", release+"-controller-manager-metrics-monitor")
	if sm == nil {
		t.Fatal("no ServiceMonitor rendered")
	}
	if err := applyDryRun(t, sm); err != nil {
		t.Fatalf("the ServiceMonitor as rendered: %v", err)
	}
	if err := unstructured.SetNestedField(sm.Object, true, "spec", "honourLabels"); err != nil {
		t.Fatal(err)
	}
	if err := applyDryRun(t, sm); err == nil || !strings.Contains(err.Error(), "honourLabels") {
		t.Errorf("dry run of a ServiceMonitor with spec.honourLabels: %v, want an error naming the field", err)
	}
}

// metricsRBAC checks the HTTPS metrics' roles: the ClusterRoles of
// config/rbac/metrics_auth_role.yaml and metrics_reader_role.yaml with their
// rules, and the binding of config/rbac/metrics_auth_role_binding.yaml that
// gives the metrics-auth role to the chart's ServiceAccount.
func metricsRBAC(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, f := range []string{"metrics_auth_role.yaml", "metrics_reader_role.yaml"} {
		want := configObject(t, "config/rbac/"+f)
		got := mustFind(t, objs, want.GetKind(), release+"-"+want.GetName())
		if !reflect.DeepEqual(rules(t, got), rules(t, want)) {
			t.Errorf("%s %s rules differ from config/rbac/%s:\n got %v\nwant %v", got.GetKind(), got.GetName(), f, rules(t, got), rules(t, want))
		}
	}
	want := configObject(t, "config/rbac/metrics_auth_role_binding.yaml")
	b := mustFind(t, objs, want.GetKind(), release+"-"+want.GetName())
	ref, _, _ := unstructured.NestedStringMap(b.Object, "roleRef")
	wantRef, _, _ := unstructured.NestedStringMap(want.Object, "roleRef")
	wantRef["name"] = release + "-" + wantRef["name"]
	if !reflect.DeepEqual(ref, wantRef) {
		t.Errorf("%s roleRef = %v, want %v", b.GetName(), ref, wantRef)
	}
	subjects, _, _ := unstructured.NestedSlice(b.Object, "subjects")
	sa := map[string]any{"kind": "ServiceAccount", "name": deployment(t, objs).Spec.Template.Spec.ServiceAccountName, "namespace": namespace}
	if !reflect.DeepEqual(subjects, []any{sa}) {
		t.Errorf("%s subjects = %v, want the manager's ServiceAccount %v", b.GetName(), subjects, sa)
	}
}

// noMetricsRBAC checks that no role of config/rbac/metrics_*.yaml is
// rendered (metrics off or plain HTTP: nothing to authorize).
func noMetricsRBAC(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, f := range configFiles(t, "config/rbac/metrics_*.yaml") {
		o := decode(t, string(read(t, f)))[0]
		if find(objs, o.GetKind(), release+"-"+o.GetName()) != nil {
			t.Errorf("unexpected %s %s", o.GetKind(), release+"-"+o.GetName())
		}
	}
}

// managerAcceptsMetricsFlags checks the rendered metrics flags against the
// manager's own rule (operator.CheckMetricsServing): plain HTTP only on
// loopback, or the manager would exit at start.
func managerAcceptsMetricsFlags(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	bind, secure := operator.Defaults().MetricsBindAddress, operator.Defaults().MetricsSecure
	for _, a := range deployment(t, objs).Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(a, "--metrics-bind-address="); ok {
			bind = v
		}
		if v, ok := strings.CutPrefix(a, "--metrics-secure="); ok {
			var err error
			if secure, err = strconv.ParseBool(v); err != nil {
				t.Errorf("%s: %v", a, err)
			}
		}
	}
	if err := operator.CheckMetricsServing(bind, secure); err != nil {
		t.Errorf("the manager would refuse the rendered metrics flags: %v", err)
	}
}

// bindingsResolve checks that every binding refers to a role and a
// ServiceAccount of the rendering (the dry run cannot: both may be absent).
func bindingsResolve(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	for _, b := range append(ofKind(objs, "RoleBinding"), ofKind(objs, "ClusterRoleBinding")...) {
		kind, _, _ := unstructured.NestedString(b.Object, "roleRef", "kind")
		name, _, _ := unstructured.NestedString(b.Object, "roleRef", "name")
		ns := ""
		if kind == "Role" {
			ns = b.GetNamespace()
		}
		if findIn(objs, kind, ns, name) == nil {
			t.Errorf("%s %s/%s binds %s %s, which the chart does not render", b.GetKind(), b.GetNamespace(), b.GetName(), kind, name)
		}
		subjects, _, _ := unstructured.NestedSlice(b.Object, "subjects")
		for _, s := range subjects {
			s := s.(map[string]any)
			if findIn(objs, "ServiceAccount", s["namespace"].(string), s["name"].(string)) == nil {
				t.Errorf("%s %s binds ServiceAccount %s/%s, which the chart does not render", b.GetKind(), b.GetName(), s["namespace"], s["name"])
			}
		}
	}
}

func deployment(t *testing.T, objs []*unstructured.Unstructured) *appsv1.Deployment {
	t.Helper()
	u := mustFind(t, objs, "Deployment", release+"-controller-manager")
	d := &appsv1.Deployment{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, d); err != nil {
		t.Fatal(err)
	}
	return d
}

// hardened checks the pod against the "restricted" Pod Security Standard's
// main points.
func hardened(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	pod := d.Spec.Template.Spec
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot and seccomp RuntimeDefault", sc)
	}
	sc := pod.Containers[0].SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext = %+v, want no privilege escalation, read-only root, capabilities drop ALL", sc)
	}
	if pod.Containers[0].Resources.Limits.Memory().IsZero() {
		t.Errorf("no memory limit")
	}
}

// selects checks that the Service selects the Deployment's pods.
func selects(t *testing.T, svc *unstructured.Unstructured, d *appsv1.Deployment) {
	t.Helper()
	sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
	for k, v := range sel {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("Service selects %s=%s, the pods have %v", k, v, d.Spec.Template.Labels)
		}
	}
	if len(sel) == 0 {
		t.Errorf("Service without selector")
	}
}

func wantArgs(t *testing.T, args []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(args, w) {
			t.Errorf("args %q lack %q", args, w)
		}
	}
}

func noArgPrefix(t *testing.T, args []string, prefixes ...string) {
	t.Helper()
	for _, a := range args {
		for _, p := range prefixes {
			if strings.HasPrefix(a, p) {
				t.Errorf("unexpected arg %q", a)
			}
		}
	}
}

func rules(t *testing.T, u *unstructured.Unstructured) []any {
	t.Helper()
	r, ok, err := unstructured.NestedSlice(u.Object, "rules")
	if !ok || err != nil {
		t.Fatalf("%s %s has no rules (%v)", u.GetKind(), u.GetName(), err)
	}
	return r
}

func absent(t *testing.T, objs []*unstructured.Unstructured, kinds ...string) {
	t.Helper()
	for _, k := range kinds {
		for _, o := range ofKind(objs, k) {
			t.Errorf("unexpected %s %s/%s", k, o.GetNamespace(), o.GetName())
		}
	}
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// find returns the object of that kind and name (any namespace).
func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range ofKind(objs, kind) {
		if o.GetName() == name {
			return o
		}
	}
	return nil
}

func findIn(objs []*unstructured.Unstructured, kind, ns, name string) *unstructured.Unstructured {
	for _, o := range ofKind(objs, kind) {
		if o.GetName() == name && o.GetNamespace() == ns {
			return o
		}
	}
	return nil
}

func mustFind(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	o := find(objs, kind, name)
	if o == nil {
		t.Fatalf("no %s %s in the rendering", kind, name)
	}
	return o
}

func mustFindIn(t *testing.T, objs []*unstructured.Unstructured, kind, ns, name string) *unstructured.Unstructured {
	t.Helper()
	o := findIn(objs, kind, ns, name)
	if o == nil {
		t.Fatalf("no %s %s/%s in the rendering", kind, ns, name)
	}
	return o
}

// grant is one verb on one resource of one API group.
type grant struct{ group, resource, verb string }

// grants flattens RBAC rules, sorted.
func grants(rules []any) []grant {
	var out []grant
	for _, r := range rules {
		r := r.(map[string]any)
		for _, g := range r["apiGroups"].([]any) {
			for _, res := range r["resources"].([]any) {
				for _, v := range r["verbs"].([]any) {
					out = append(out, grant{g.(string), res.(string), v.(string)})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b grant) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return slices.Compact(out)
}

// namespaced asks the API server whether the grant's resource is namespaced.
// Resources it does not serve (argoproj.io rollouts: no Argo Rollouts CRD
// here) count as namespaced, as in the chart.
func namespaced(t *testing.T, g grant) bool {
	t.Helper()
	base, _, _ := strings.Cut(g.resource, "/")
	gvk, err := k8s.RESTMapper().KindFor(schema.GroupVersionResource{Group: g.group, Resource: base})
	if err != nil {
		return true
	}
	ns, err := k8s.IsObjectNamespaced(&unstructured.Unstructured{Object: map[string]any{"apiVersion": gvk.GroupVersion().String(), "kind": gvk.Kind}})
	if err != nil {
		t.Fatalf("scope of %v: %v", g, err)
	}
	return ns
}

// The schema refuses what the manager refuses at start-up, so
// that a bad value fails at helm install, not as a crash-looping pod: a
// keySelector that is not a label selector (operator.ParseKeySelector
// decides), and a plain-http manager.allowedEndpoints entry unless
// allowInsecureEndpoints is set (endpoint.Policy.Validate decides).
func TestSchemaAgreesWithManagerStartup(t *testing.T) {
	for i, sel := range []string{
		"", "shard=a", "shard==a", "shard!=a", "shard in (a,b)", "shard notin (a)", "shard", "!shard",
		"keyops.io/shard=a,tier in (x, y),!legacy", "shard in (a)", "n>3",
		"shard=", "shard in (a", "shard=a b", "shard=(a)", "=a", "shard in a", "sh ard=a", "shard=a,", "-shard=a", "shard=a=b",
	} {
		// Subtests are numbered: a name with a comma would become a
		// temporary directory that helm's --values splits in two.
		t.Run(fmt.Sprintf("keySelector %d", i), func(t *testing.T) {
			_, mgrErr := operator.ParseKeySelector(sel)
			_, helmErr := render(t, "keySelector: "+strconv.Quote(sel))
			if (mgrErr == nil) != (helmErr == nil) {
				t.Fatalf("keySelector %q: manager: %v; helm: %v", sel, mgrErr, helmErr)
			}
		})
	}
	for i, tc := range []struct {
		values string
		ok     bool
	}{
		{"manager: {allowedEndpoints: [https://binance-proxy.internal:8443]}", true},
		{"manager: {allowedEndpoints: [http://binance-proxy.internal:8443]}", false},
		{"manager: {allowedEndpoints: [http://127.0.0.1:9000], allowInsecureEndpoints: true}", true},
		{"manager: {allowedEndpoints: [http://127.0.0.1:9000], allowInsecureEndpoints: false}", false},
	} {
		t.Run(fmt.Sprintf("allowedEndpoints %d", i), func(t *testing.T) {
			_, err := render(t, tc.values)
			if (err == nil) != tc.ok {
				t.Fatalf("%s: helm accepted=%v, want %v: %v", tc.values, err == nil, tc.ok, err)
			}
			if err != nil && !strings.Contains(err.Error(), "/manager/allowedEndpoints/0") {
				t.Errorf("helm's error does not name the value: %v", err)
			}
		})
	}
}

// chartAppVersion is Chart.yaml's appVersion.
func chartAppVersion(t *testing.T) string {
	t.Helper()
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(read(t, filepath.Join(chartDir, "Chart.yaml")), &chart); err != nil {
		t.Fatal(err)
	}
	return chart.AppVersion
}
