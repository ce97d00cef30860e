package integration_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// The managers under test run as service accounts bound to exactly the RBAC
// in config/, applied from the YAML files, never as the envtest admin.

// rbacDir is the generated RBAC (config/rbac/role.yaml comes from the
// +kubebuilder:rbac markers in internal/controller/*.go via `make manifests`).
var rbacDir = filepath.Join("..", "..", "config", "rbac")

// kustomization is as much of a kustomization.yaml as the tests read.
type kustomization struct {
	Resources []string `json:"resources"`
}

// kustomizeFiles lists the resource files of dir's kustomization.yaml.
func kustomizeFiles(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k kustomization
	if err := yaml.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("%s/kustomization.yaml: %w", dir, err)
	}
	out := make([]string, 0, len(k.Resources))
	for _, r := range k.Resources {
		out = append(out, filepath.Join(dir, r))
	}
	return out, nil
}

// readObjects decodes every document of a multi-document YAML file.
func readObjects(file string) ([]runtime.Object, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []runtime.Object
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		out = append(out, obj)
	}
	return out, nil
}

// placement does for the RBAC kinds what config/default's kustomization
// does (namespace:, namePrefix:): namespaced objects move to namespace,
// names and references to them get prefix. Subject, when set, replaces
// every binding's subjects (Roles of config/namespaced/watched name the
// operator's service account as config/namespaced/operator renders it).
type placement struct {
	namespace string
	prefix    string
	subject   *rbacv1.Subject
	// skip names objects (kind/name) left out, as config/namespaced
	// deletes the generated ClusterRole with a patch.
	skip sets.Set[string]
}

func (p placement) subjects(in []rbacv1.Subject) []rbacv1.Subject {
	if p.subject != nil {
		return []rbacv1.Subject{*p.subject}
	}
	out := make([]rbacv1.Subject, len(in))
	for i, s := range in {
		out[i] = s
		if s.Kind == rbacv1.ServiceAccountKind {
			out[i].Name, out[i].Namespace = p.prefix+s.Name, p.namespace
		}
	}
	return out
}

// applyRBAC creates the service accounts, roles and bindings of files.
func applyRBAC(ctx context.Context, c client.Client, p placement, files ...string) error {
	for _, f := range files {
		objs, err := readObjects(f)
		if err != nil {
			return err
		}
		for _, o := range objs {
			var obj client.Object
			switch o := o.(type) {
			case *corev1.ServiceAccount:
				o.Namespace = p.namespace
				obj = o
			case *rbacv1.Role:
				o.Namespace = p.namespace
				obj = o
			case *rbacv1.ClusterRole:
				obj = o
			case *rbacv1.RoleBinding:
				o.Namespace = p.namespace
				o.RoleRef.Name = p.prefix + o.RoleRef.Name
				o.Subjects = p.subjects(o.Subjects)
				obj = o
			case *rbacv1.ClusterRoleBinding:
				o.RoleRef.Name = p.prefix + o.RoleRef.Name
				o.Subjects = p.subjects(o.Subjects)
				obj = o
			default:
				return fmt.Errorf("%s: unexpected %T in RBAC manifests", f, o)
			}
			kind := strings.TrimPrefix(fmt.Sprintf("%T", o), "*v1.")
			if p.skip.Has(kind + "/" + obj.GetName()) {
				continue
			}
			obj.SetName(p.prefix + obj.GetName())
			if err := c.Create(ctx, obj); err != nil {
				return fmt.Errorf("%s: %s %s: %w", f, kind, obj.GetName(), err)
			}
		}
	}
	return nil
}

// impersonate is cfg acting as a service account: the API server applies
// that account's RBAC to every request.
func impersonate(cfg *rest.Config, namespace, name string, log *requestLog) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + namespace + ":" + name}
	if log != nil {
		cfg.Wrap(log.wrap)
	}
	return cfg
}

// apiCall is one kind of request a manager made, in RBAC terms.
type apiCall struct {
	verb, group, resource, namespace string
	// denied: the API server answered 401 or 403.
	denied bool
}

// requestLog records every API request of a manager. It can also keep the
// manager out of some namespaces (exclude): its cluster-wide lists and
// watches leave them out (a field selector, as controller-runtime's own
// namespace exclusion does) and any request inside them is refused.
type requestLog struct {
	exclude []string
	mu      sync.Mutex
	calls   map[apiCall]int
}

// clusterScoped are the cluster-scoped resources the manager lists: no
// namespace field to exclude by.
var clusterScoped = map[string]bool{"namespaces": true, "clusterexchangekeypolicies": true}

// (namespaced roles copy every rule of config/rbac/role.yaml except those
// for clusterScoped resources.)

var requestInfo = &request.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")}

func (l *requestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		info, err := requestInfo.NewRequestInfo(req)
		if err != nil || !info.IsResourceRequest {
			return rt.RoundTrip(req)
		}
		call := apiCall{verb: info.Verb, group: info.APIGroup, resource: info.Resource, namespace: info.Namespace}
		if info.Subresource != "" {
			call.resource += "/" + info.Subresource
		}
		if len(l.exclude) > 0 && info.Namespace == "" && (info.Verb == "list" || info.Verb == "watch") && !clusterScoped[info.Resource] {
			req = req.Clone(req.Context())
			q := req.URL.Query()
			sel := []fields.Selector{}
			if have, err := fields.ParseSelector(q.Get("fieldSelector")); err == nil && !have.Empty() {
				sel = append(sel, have)
			}
			for _, ns := range l.exclude {
				sel = append(sel, fields.OneTermNotEqualSelector("metadata.namespace", ns))
			}
			q.Set("fieldSelector", fields.AndSelectors(sel...).String())
			req.URL.RawQuery = q.Encode()
		}
		var resp *http.Response
		if info.Namespace != "" && slices.Contains(l.exclude, info.Namespace) {
			resp = forbidden(req, info)
		} else if resp, err = rt.RoundTrip(req); err != nil {
			return nil, err
		}
		call.denied = resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden
		l.mu.Lock()
		if l.calls == nil {
			l.calls = map[apiCall]int{}
		}
		l.calls[call]++
		l.mu.Unlock()
		return resp, nil
	})
}

func (l *requestLog) snapshot() map[apiCall]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[apiCall]int, len(l.calls))
	for k, v := range l.calls {
		out[k] = v
	}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func forbidden(req *http.Request, info *request.RequestInfo) *http.Response {
	body := fmt.Sprintf(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,"message":"namespace %s is reserved for the namespace-scoped manager of TestNamespaceScopedManager","details":{"kind":%q}}`, info.Namespace, info.Resource)
	return &http.Response{
		StatusCode: http.StatusForbidden, Status: "403 Forbidden", Request: req,
		Header: http.Header{"Content-Type": []string{"application/json"}},
		Body:   io.NopCloser(bytes.NewBufferString(body)), ContentLength: int64(len(body)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
}

// grant is one verb on one resource, as an RBAC rule expands.
type grant struct{ group, resource, verb string }

func (g grant) String() string {
	res := g.resource
	if g.group != "" {
		res = g.group + "/" + g.resource
	}
	return g.verb + " " + res
}

func expand(rules []rbacv1.PolicyRule) sets.Set[grant] {
	out := sets.New[grant]()
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out.Insert(grant{g, res, v})
				}
			}
		}
	}
	return out
}

// rulesOf reads the rules of the one Role or ClusterRole in file.
func rulesOf(file string) ([]rbacv1.PolicyRule, error) {
	objs, err := readObjects(file)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		switch o := o.(type) {
		case *rbacv1.ClusterRole:
			return o.Rules, nil
		case *rbacv1.Role:
			return o.Rules, nil
		}
	}
	return nil, fmt.Errorf("%s holds no Role or ClusterRole", file)
}

// unexercisedOK are granted verbs no request of the suite shows, each needed
// for a reason the request log cannot see.
var unexercisedOK = map[grant]string{
	// The OwnerReferencesPermissionEnforcement admission plugin (enabled in
	// the suite's API server, as on OpenShift) lets only a user who may
	// delete an object set its ownerReferences, and only a user who may
	// update the owner's finalizers set blockOwnerDeletion: the target
	// Secret is created with a controller reference to its ExchangeAPIKey.
	{"", "secrets", "delete"}:                                      "ownerReferences on target Secrets (OwnerReferencesPermissionEnforcement)",
	{"exchange.keyops.io", "exchangeapikeys/finalizers", "update"}: "blockOwnerDeletion on target Secrets (OwnerReferencesPermissionEnforcement)",
	// client-go's informers (v0.35 on) start with a streaming watch
	// (WatchListClient), which the suite's API server serves; against an
	// API server that does not, they fall back to LIST then WATCH.
	{"exchange.keyops.io", "exchangeapikeys", "list"}:            "informers' fallback from WatchList to LIST",
	{"", "secrets", "list"}:                                      "informers' fallback from WatchList to LIST",
	{"exchange.keyops.io", "exchangeaccounts", "list"}:           "informers' fallback from WatchList to LIST",
	{"exchange.keyops.io", "clusterexchangekeypolicies", "list"}: "informers' fallback from WatchList to LIST",
	{"", "namespaces", "list"}:                                   "informers' fallback from WatchList to LIST",
	// Restart targets selected by label are listed; the suite selects
	// Deployments only.
	{"apps", "statefulsets", "list"}:    "restart targets by label selector",
	{"apps", "daemonsets", "list"}:      "restart targets by label selector",
	{"argoproj.io", "rollouts", "list"}: "restart targets by label selector",
	// The events library PATCHes an Event into a series only when the same
	// Event repeats within minutes, which a test run may or may not do.
	{"events.k8s.io", "events", "patch"}: "Event series (client-go tools/events)",
}

// pendingDrop are granted verbs that nothing uses: the markers that grant
// them (internal/controller/exchangeapikey) should lose them. The
// check fails when one is still listed here after the marker dropped it.
var pendingDrop = map[grant]string{}

// checkNeedlessVerbs compares what the suite manager was granted with what
// it used: a granted verb no request used, and that no reason above
// explains, is needless.
func checkNeedlessVerbs(granted sets.Set[grant], calls map[apiCall]int) []string {
	used := sets.New[grant]()
	for c := range calls {
		if !c.denied {
			used.Insert(grant{c.group, c.resource, c.verb})
		}
	}
	var problems []string
	for g := range granted.Difference(used) {
		if _, ok := unexercisedOK[g]; ok {
			continue
		}
		if why, ok := pendingDrop[g]; ok {
			fmt.Fprintf(os.Stderr, "RBAC: %q is granted but never used (%s): drop it from the +kubebuilder:rbac marker\n", g.String(), why)
			continue
		}
		problems = append(problems, fmt.Sprintf("config/rbac/role.yaml grants %q but no request of the integration suite used it: drop it from the +kubebuilder:rbac markers in internal/controller/, or list it in unexercisedOK with the reason it is needed", g.String()))
	}
	for g := range pendingDrop {
		if !granted.Has(g) {
			problems = append(problems, fmt.Sprintf("%q is no longer granted: remove it from pendingDrop (test/integration/rbac_test.go)", g.String()))
		}
	}
	sort.Strings(problems)
	return problems
}

func sortedGrants(s sets.Set[grant]) []string {
	var out []string
	for g := range s {
		out = append(out, g.String())
	}
	sort.Strings(out)
	return out
}

// The namespace-scoped variant's Role must grant what the generated
// ClusterRole grants: one set of markers, two shapes.
func TestNamespacedRoleMatchesGenerated(t *testing.T) {
	generated, err := rulesOf(filepath.Join(rbacDir, "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	namespaced, err := rulesOf(filepath.Join(namespacedDir, "watched", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	g := expand(generated)
	for gr := range g {
		// A Role cannot grant cluster-scoped resources, and a namespace-
		// scoped manager does not read them (no policy floor there).
		if clusterScoped[strings.Split(gr.resource, "/")[0]] {
			g.Delete(gr)
		}
	}
	if n := expand(namespaced); !equality.Semantic.DeepEqual(sortedGrants(g), sortedGrants(n)) {
		t.Fatalf("config/namespaced/watched/role.yaml differs from the generated config/rbac/role.yaml: copy the rules over\n only generated: %v\n only namespaced: %v",
			sortedGrants(g.Difference(n)), sortedGrants(n.Difference(g)))
	}
	// Its binding names the service account as config/namespaced/operator
	// renders it (namespace: and namePrefix: of that kustomization).
	b, err := os.ReadFile(filepath.Join(namespacedDir, "operator", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Namespace  string `json:"namespace"`
		NamePrefix string `json:"namePrefix"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	objs, err := readObjects(filepath.Join(namespacedDir, "watched", "role_binding.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: k.NamePrefix + "controller-manager", Namespace: k.Namespace}
	if rb, ok := objs[0].(*rbacv1.RoleBinding); !ok || len(rb.Subjects) != 1 || rb.Subjects[0] != want {
		t.Fatalf("config/namespaced/watched/role_binding.yaml must bind %+v, got %+v", want, objs[0])
	}
}
