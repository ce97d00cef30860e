package exchangeapikey

import (
	"context"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keyops-io/exchange-key-operator/internal/refwatch"
)

// cacheReader answers reads at resourceVersion "0" from a (possibly stale)
// watch cache and other reads from etcd, and records which it was asked.
type cacheReader struct {
	cached, fresh *corev1.Secret
	asked         []string
}

func (c *cacheReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	rv := ""
	for _, o := range opts {
		if g, ok := o.(*client.GetOptions); ok && g.Raw != nil {
			rv = g.Raw.ResourceVersion
		}
	}
	c.asked = append(c.asked, rv)
	src := c.fresh
	if rv == "0" {
		src = c.cached
	}
	if src == nil {
		return apierrors.NewNotFound(corev1.Resource("secrets"), key.Name)
	}
	src.DeepCopyInto(obj.(*corev1.Secret))
	return nil
}

func (c *cacheReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return nil
}

// A source is read from the watch cache unless that answer may be older
// than what the Secret watch saw, or is NotFound: then again, consistently.
func TestGetSourcePrefersTheWatchCacheButNeverAnOlderVersion(t *testing.T) {
	at := func(rv string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "src", ResourceVersion: rv}}
	}
	for _, c := range []struct {
		name          string
		watched       string // "" = the watch knows no version
		cached, fresh *corev1.Secret
		wantRV        string
		wantAsked     []string
	}{
		{"the watch knows nothing: the cached answer", "", at("1"), at("2"), "1", []string{"0"}},
		{"the cache has what the watch saw", "2", at("2"), at("2"), "2", []string{"0"}},
		{"the cache is behind the watch: read again", "2", at("1"), at("2"), "2", []string{"0", ""}},
		{"the cache does not have it yet: read again", "", nil, at("1"), "1", []string{"0", ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := refwatch.New(nil, corev1.SchemeGroupVersion.WithResource("secrets"), nil, nil, logr.Discard())
			if c.watched != "" {
				w.Observed("ns", "src", c.watched)
			}
			cr := &cacheReader{cached: c.cached, fresh: c.fresh}
			r := &Reconciler{APIReader: cr, Secrets: w}
			s, err := r.getSource(context.Background(), types.NamespacedName{Namespace: "ns", Name: "src"})
			if err != nil {
				t.Fatal(err)
			}
			if s.ResourceVersion != c.wantRV || len(cr.asked) != len(c.wantAsked) {
				t.Fatalf("read version %q after reads at %q, want %q after %q", s.ResourceVersion, cr.asked, c.wantRV, c.wantAsked)
			}
			for i := range c.wantAsked {
				if cr.asked[i] != c.wantAsked[i] {
					t.Fatalf("reads at %q, want %q", cr.asked, c.wantAsked)
				}
			}
		})
	}
}
