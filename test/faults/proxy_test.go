//go:build faults

package faults

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// conflictProxy stands between the manager and the API server. Once armed,
// the first time the manager writes an object of a kind (an ExchangeAPIKey,
// its status, a Secret, a Deployment) the proxy first updates that object
// itself (an unrelated annotation), then forwards the manager's write: a
// write that carries the resourceVersion the manager read now conflicts.
// Holding the request while the competing write lands makes the conflict
// certain, where a watcher racing the manager would only make it likely.
type conflictProxy struct {
	ns    string
	rp    *httputil.ReverseProxy
	armed atomic.Bool

	mu   sync.Mutex
	done map[string]bool
	// results counts, per kind, the API server's answers to the writes
	// that followed a competing write (409 is a conflict).
	results map[string]map[int]int
	errs    []string
}

func startConflictProxy(t *testing.T, sc *scenario) (*conflictProxy, string) {
	t.Helper()
	target, err := url.Parse(cl.cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := rest.TransportFor(cl.cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &conflictProxy{ns: sc.ns, done: map[string]bool{}, results: map[string]map[int]int{}}
	p.rp = &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = target.Host },
		Transport:     tr,
		FlushInterval: -1, // watches stream
	}
	srv := httptest.NewServer(p)
	// After the managers are gone: watches through the proxy would hold
	// Close up until the API server ends them.
	sc.closers = append(sc.closers, func() { srv.CloseClientConnections(); srv.Close() })
	// The manager reaches the proxy over plain HTTP on loopback; the proxy
	// talks to the API server as the admin user.
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: proxy
  cluster:
    server: %s
contexts:
- name: proxy
  context:
    cluster: proxy
    user: proxy
users:
- name: proxy
  user: {}
current-context: proxy
`, srv.URL)
	path := filepath.Join(t.TempDir(), "proxy.kubeconfig")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, path
}

// classify names the kind of a write to an object of the namespace.
func (p *conflictProxy) classify(r *http.Request) (kind, name string, ok bool) {
	if r.Method != http.MethodPut && r.Method != http.MethodPatch {
		return "", "", false
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	// api/v1/namespaces/NS/secrets/NAME
	// apis/GROUP/VERSION/namespaces/NS/RESOURCE/NAME[/status]
	i := -1
	for j := range parts {
		if parts[j] == "namespaces" {
			i = j
			break
		}
	}
	if i < 0 || len(parts) < i+4 || parts[i+1] != p.ns {
		return "", "", false
	}
	res, name := parts[i+2], parts[i+3]
	sub := ""
	if len(parts) > i+4 {
		sub = parts[i+4]
	}
	switch {
	case res == "exchangeapikeys" && sub == "status":
		return "ExchangeAPIKey/status", name, true
	case res == "exchangeapikeys" && sub == "":
		return "ExchangeAPIKey", name, true
	case res == "secrets" && sub == "":
		return "Secret", name, true
	case res == "deployments" && sub == "":
		return "Deployment", name, true
	}
	return "", "", false
}

func (p *conflictProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind, name, ok := p.classify(r)
	if !ok || !p.armed.Load() || !p.claim(kind+" "+name) {
		p.rp.ServeHTTP(w, r)
		return
	}
	if err := p.bump(r.Context(), kind, name); err != nil {
		p.mu.Lock()
		p.errs = append(p.errs, fmt.Sprintf("competing write to %s %s: %v", kind, name, err))
		p.mu.Unlock()
	}
	sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	p.rp.ServeHTTP(sw, r)
	p.mu.Lock()
	if p.results[kind] == nil {
		p.results[kind] = map[int]int{}
	}
	p.results[kind][sw.code]++
	p.mu.Unlock()
}

func (p *conflictProxy) claim(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done[id] {
		return false
	}
	p.done[id] = true
	return true
}

// bump is the competing write: an annotation only the test uses.
func (p *conflictProxy) bump(ctx context.Context, kind, name string) error {
	var obj client.Object
	switch kind {
	case "ExchangeAPIKey", "ExchangeAPIKey/status":
		obj = &keyopsv1.ExchangeAPIKey{}
	case "Secret":
		obj = &corev1.Secret{}
	case "Deployment":
		obj = &appsv1.Deployment{}
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := cl.c.Get(ctx, client.ObjectKey{Namespace: p.ns, Name: name}, obj); err != nil {
			return err
		}
		a := obj.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a["faults.keyops.io/competing-write"] = kind
		obj.SetAnnotations(a)
		return cl.c.Update(ctx, obj)
	})
}

func (p *conflictProxy) summary() (map[string]map[int]int, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]map[int]int{}
	for k, m := range p.results {
		out[k] = map[int]int{}
		for c, n := range m {
			out[k][c] = n
		}
	}
	return out, append([]string(nil), p.errs...)
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
