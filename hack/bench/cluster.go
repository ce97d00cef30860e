package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/keyops-io/exchange-key-operator/hack/internal/localenv"
	"github.com/keyops-io/exchange-key-operator/internal/operator"
)

// cluster is the local control plane and the benchmark's own clients.
type cluster struct {
	env *envtest.Environment
	// cfg is the admin config without client-side rate limiting: the raw
	// bound is whatever the API server accepts.
	cfg *rest.Config
	c   client.Client
	cs  *kubernetes.Clientset
	// kubeconfig is a file for the manager process (its own user, in
	// system:masters like the benchmark, so that API Priority and Fairness
	// treats both alike).
	kubeconfig string
}

func startCluster(root, workDir string) (*cluster, error) {
	env, cfg, err := localenv.Start(root, "bench")
	if err != nil {
		return nil, err
	}
	cl := &cluster{env: env}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0
	cfg.UserAgent = "keyops-bench"
	cl.cfg = cfg
	if cl.c, err = client.New(cfg, client.Options{Scheme: operator.Scheme()}); err != nil {
		_ = env.Stop()
		return nil, err
	}
	if cl.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		_ = env.Stop()
		return nil, err
	}
	u, err := env.AddUser(envtest.User{Name: "exchange-key-operator", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("adding the manager's user: %w", err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	cl.kubeconfig = filepath.Join(workDir, "manager.kubeconfig")
	if err := os.WriteFile(cl.kubeconfig, kc, 0o600); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return cl, nil
}

func (cl *cluster) stop() {
	if cl != nil && cl.env != nil {
		_ = cl.env.Stop()
	}
}

// writeVerbs are the mutating verbs of apiserver_request_total.
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "DELETE": true, "DELETECOLLECTION": true, "APPLY": true}

// operatorResources are what the operator may write; anything else (the API
// server's own leases, for instance) is reported apart.
var operatorResources = map[string]bool{
	"secrets": true, "exchangeapikeys": true, "exchangeapikeys/status": true, "events": true,
	"deployments": true, "statefulsets": true, "daemonsets": true,
}

// writeCounts are cumulative API writes by resource[/subresource], from the
// API server's own metric.
type writeCounts map[string]float64

func (cl *cluster) writes(ctx context.Context) (writeCounts, error) {
	w, _, err := cl.requests(ctx)
	return w, err
}

// requests returns the cumulative writes by resource[/subresource] and the
// reads by "VERB resource" (GET, LIST; watches are long-running and left out).
func (cl *cluster) requests(ctx context.Context) (writes, reads writeCounts, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	raw, err := cl.cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("GET /metrics of the API server: %w", err)
	}
	writes, reads = writeCounts{}, writeCounts{}
	for _, s := range parseProm(raw) {
		if s.name != "apiserver_request_total" {
			continue
		}
		r := s.labels["resource"]
		if sr := s.labels["subresource"]; sr != "" {
			r += "/" + sr
		}
		switch v := s.labels["verb"]; {
		case writeVerbs[v]:
			writes[r] += s.value
		case v == "GET" || v == "LIST":
			reads[v+" "+r] += s.value
		}
	}
	return writes, reads, nil
}

// delta is after minus before, less the benchmark's own writes (ours),
// split into the operator's resources and the rest (the API server's own,
// such as its identity lease), each with a breakdown for the report.
func (after writeCounts) delta(before, ours writeCounts) (operatorWrites float64, opDetail string, other float64, otherDetail string) {
	var op, others []string
	for r, v := range after {
		d := v - before[r] - ours[r]
		if d <= 0 {
			continue
		}
		if operatorResources[r] {
			operatorWrites += d
			op = append(op, fmt.Sprintf("%s=%.0f", r, d))
		} else {
			other += d
			others = append(others, fmt.Sprintf("%s=%.0f", r, d))
		}
	}
	sort.Strings(op)
	sort.Strings(others)
	return operatorWrites, strings.Join(op, " "), other, strings.Join(others, " ")
}

// cpuSeconds is a process's user+system CPU time, from /proc/<pid>/stat.
// USER_HZ is 100 on every Linux architecture Go supports.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; fields start after its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// childPIDs finds this process's children by command name (the envtest
// kube-apiserver and etcd), for CPU accounting.
func childPIDs() map[string]int {
	out := map[string]int{}
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == self {
			out[s[open+1:end]] = pid
		}
	}
	return out
}

// procStatusKB reads a "VmRSS:"-style field of /proc/<pid>/status in KiB.
func procStatusKB(pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if value, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(value)
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}
