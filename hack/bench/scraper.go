package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// promScrapeInterval is how often the benchmark scrapes each manager the way
// Prometheus does (issue #22: memory must hold while scraped every 15 s).
const promScrapeInterval = 15 * time.Second

// metricsAuth is what Prometheus scrapes with: the bearer token of a
// ServiceAccount bound to the shipped metrics-reader ClusterRole
// (config/rbac/metrics_reader_role.yaml), over HTTPS to the manager's
// self-signed certificate. The manager runs with --metrics-secure (its
// default), so every scrape, the benchmark's own polling included, passes
// the authentication and authorization filter.
type metricsAuth struct {
	token  string
	client *http.Client
}

func (cl *cluster) metricsAuth(ctx context.Context, root string) (*metricsAuth, error) {
	const ns, saName = "keyops-bench-monitoring", "prometheus"
	raw, err := os.ReadFile(filepath.Join(root, "config", "rbac", "metrics_reader_role.yaml"))
	if err != nil {
		return nil, err
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(raw, &role); err != nil {
		return nil, fmt.Errorf("config/rbac/metrics_reader_role.yaml: %w", err)
	}
	role.Name = "keyops-bench-metrics-reader"
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: saName}},
	}
	if err := ensureNamespaces(ctx, cl.c, []string{ns}); err != nil {
		return nil, err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: saName}}
	for _, obj := range []client.Object{sa, &role, binding} {
		if err := cl.c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
	}
	tr, err := cl.cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, saName, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](int64((24 * time.Hour).Seconds()))},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token for the scraper: %w", err)
	}
	return &metricsAuth{token: tr.Status.Token, client: &http.Client{Transport: &http.Transport{
		// The manager's certificate is self-signed, as in a cluster
		// without cert-manager (Prometheus: insecureSkipVerify).
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives: true,
	}}}, nil
}

// get fetches url with the token; Accept and Accept-Encoding as Prometheus
// sends them (the text format, gzipped).
func (a *metricsAuth) get(ctx context.Context, url string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2")
	resp, err := a.client.Do(req) // Go's transport asks for gzip and inflates
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, nil
}

// promScraper scrapes one manager every promScrapeInterval for as long as
// the manager runs, as Prometheus would.
type promScraper struct {
	mu        sync.Mutex
	n, errs   int
	durations []time.Duration
	size      int
	cancel    context.CancelFunc
	done      chan struct{}
}

func (m *manager) startPromScraper(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	p := &promScraper{cancel: cancel, done: make(chan struct{})}
	m.prom = p
	go func() {
		defer close(p.done)
		t := time.NewTicker(promScrapeInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-m.exited:
				return
			case <-t.C:
			}
			t0 := time.Now()
			b, err := m.auth.get(ctx, m.metrics, 30*time.Second)
			p.mu.Lock()
			p.n++
			if err != nil {
				if ctx.Err() == nil {
					p.errs++
				}
			} else {
				p.durations = append(p.durations, time.Since(t0))
				p.size = len(b)
			}
			p.mu.Unlock()
		}
	}()
}

func (p *promScraper) stop() {
	if p != nil {
		p.cancel()
		<-p.done
	}
}

// summary: scrapes made, failed, median and max duration, last size.
func (p *promScraper) summary() string {
	if p == nil {
		return "none"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	d := append([]time.Duration(nil), p.durations...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	if len(d) == 0 {
		return fmt.Sprintf("%d scrapes, %d failed", p.n, p.errs)
	}
	return fmt.Sprintf("%d scrapes every %s, %d failed; median %.0f ms, max %.0f ms; %.0f KiB uncompressed",
		p.n, promScrapeInterval, p.errs, float64(d[len(d)/2].Microseconds())/1000, float64(d[len(d)-1].Microseconds())/1000, float64(p.size)/1024)
}
