package refwatch

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

var cfg *rest.Config

func TestMain(m *testing.M) {
	env := &envtest.Environment{}
	c, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "envtest:", err, "(KUBEBUILDER_ASSETS from hack/envtest-assets.sh)")
		os.Exit(1)
	}
	cfg = c
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// refs is a Referrer over a mutable set of referenced Secret names, each
// referred to by a request of the same name.
type refs struct {
	mu    sync.Mutex
	names map[types.NamespacedName]bool
	asked int
}

func (r *refs) set(ns, name string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names[types.NamespacedName{Namespace: ns, Name: name}] = on
}

func (r *refs) ref(_ context.Context, ns, name string) []reconcile.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked++
	key := types.NamespacedName{Namespace: ns, Name: name}
	if !r.names[key] {
		return nil
	}
	return []reconcile.Request{{NamespacedName: key}}
}

func (r *refs) askedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asked
}

type fixture struct {
	t    *testing.T
	cs   *kubernetes.Clientset
	ns   string
	refs *refs
	w    *Watcher
	q    workqueue.TypedRateLimitingInterface[reconcile.Request]
}

// nsSeq makes each fixture's namespace new, also under -count.
var nsSeq atomic.Int32

func newFixture(t *testing.T, prefix string) *fixture {
	t.Helper()
	ns := fmt.Sprintf("%s-%d", prefix, nsSeq.Add(1))
	cs := kubernetes.NewForConfigOrDie(cfg)
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, cs: cs, ns: ns, refs: &refs{names: map[types.NamespacedName]bool{}}}
}

// start runs a Watcher over the fixture's namespace with one subscribed
// queue, and waits for its first list.
func (f *fixture) start(ctx context.Context) {
	f.t.Helper()
	f.w = New(metadata.NewForConfigOrDie(cfg), corev1.SchemeGroupVersion.WithResource("secrets"), []string{f.ns}, nil, logr.Discard())
	src := f.w.Source(f.refs.ref)
	f.q = workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	f.t.Cleanup(f.q.ShutDown)
	if err := src.Start(ctx, f.q); err != nil {
		f.t.Fatal(err)
	}
	go func() { _ = f.w.Start(ctx) }()
	if err := f.w.WaitForSync(ctx); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) secret(name, value string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name}, Data: map[string][]byte{"v": []byte(value)}}
}

func (f *fixture) create(ctx context.Context, name string) *corev1.Secret {
	f.t.Helper()
	s, err := f.cs.CoreV1().Secrets(f.ns).Create(ctx, f.secret(name, "1"), metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) update(ctx context.Context, name, value string) *corev1.Secret {
	f.t.Helper()
	s, err := f.cs.CoreV1().Secrets(f.ns).Update(ctx, f.secret(name, value), metav1.UpdateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// next waits for the next request in the queue.
func (f *fixture) next(ctx context.Context) reconcile.Request {
	f.t.Helper()
	got := make(chan reconcile.Request, 1)
	go func() {
		r, shutdown := f.q.Get()
		if !shutdown {
			f.q.Done(r)
			got <- r
		}
	}()
	select {
	case r := <-got:
		return r
	case <-time.After(30 * time.Second):
		f.t.Fatal("no request enqueued within 30s")
	case <-ctx.Done():
		f.t.Fatal(ctx.Err())
	}
	return reconcile.Request{}
}

// expectNext asserts that the next request enqueued is for name.
func (f *fixture) expectNext(ctx context.Context, name, why string) {
	f.t.Helper()
	if r := f.next(ctx); r.Name != name {
		f.t.Fatalf("enqueued %v, want %s (%s)", r, name, why)
	}
}

// expectForgotten asserts that the Watcher keeps no version of name.
func (f *fixture) expectForgotten(name, why string) {
	f.t.Helper()
	if rv, ok := f.w.ResourceVersion(f.ns, name); ok {
		f.t.Fatalf("the watcher remembers %s at %s, want nothing (%s)", name, rv, why)
	}
}

// waitVersion polls until the Watcher knows name at rv.
func (f *fixture) waitVersion(name, rv string) {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if got, ok := f.w.ResourceVersion(f.ns, name); ok && got == rv {
			return
		}
		if time.Now().After(deadline) {
			got, ok := f.w.ResourceVersion(f.ns, name)
			f.t.Fatalf("the watcher knows %s at %q (%v), want %q", name, got, ok, rv)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Unrelated objects leave nothing behind; referenced ones are remembered at
// their latest version, and each change of one enqueues its referrer once.
func TestRemembersOnlyReferencedObjects(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFixture(t, "refwatch-only")
	// More unrelated Secrets than one list page, so that paging is used.
	const unrelated = PageSize + 100
	for i := 0; i < unrelated; i++ {
		f.create(ctx, fmt.Sprintf("unrelated-%04d", i))
	}
	f.refs.set(f.ns, "src", true)
	src := f.create(ctx, "src")
	f.start(ctx)

	if got := f.refs.askedCount(); got < unrelated+1 {
		t.Fatalf("the first list asked about %d objects, want at least %d", got, unrelated+1)
	}
	if n := f.w.Len(); n != 1 {
		t.Fatalf("the watcher remembers %d objects after listing %d unrelated and 1 referenced, want 1", n, unrelated)
	}
	f.waitVersion("src", src.ResourceVersion)
	// The first list enqueues nothing: controllers reconcile everything
	// when they start.
	if n := f.q.Len(); n != 0 {
		t.Fatalf("the first list enqueued %d requests, want 0", n)
	}

	// An unrelated change enqueues nothing; the referenced change after it
	// must be the first request to arrive.
	f.update(ctx, "unrelated-0001", "2")
	upd := f.update(ctx, "src", "2")
	f.expectNext(ctx, "src", "the referenced change")
	f.waitVersion("src", upd.ResourceVersion)
	if n := f.w.Len(); n != 1 {
		t.Fatalf("the watcher remembers %d objects, want 1", n)
	}

	// Deletion enqueues and forgets.
	if err := f.cs.CoreV1().Secrets(f.ns).Delete(ctx, "src", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.expectNext(ctx, "src", "deleted")
	f.expectForgotten("src", "deleted")
}

// A referrer that starts to refer to an object after it was listed reads it
// itself (Observed) and gets every change after that; a version read before
// the watch delivered a newer one does not hide the newer one.
func TestLateReferrerGetsLaterChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFixture(t, "refwatch-late")
	first := f.create(ctx, "src")
	f.start(ctx)
	f.expectForgotten("src", "nothing refers to it")

	f.refs.set(f.ns, "src", true)
	f.w.Observed(f.ns, "src", first.ResourceVersion)
	upd := f.update(ctx, "src", "2")
	f.expectNext(ctx, "src", "a change after Observed")
	f.waitVersion("src", upd.ResourceVersion)
	// A GET that raced the watch reports the older version: kept newer.
	f.w.Observed(f.ns, "src", first.ResourceVersion)
	if got, _ := f.w.ResourceVersion(f.ns, "src"); got != upd.ResourceVersion {
		t.Fatalf("an older Observed version replaced the watched one: %s, want %s", got, upd.ResourceVersion)
	}

	// No longer referenced: the next change forgets it and enqueues nothing.
	f.refs.set(f.ns, "src", false)
	f.update(ctx, "src", "3")
	f.refs.set(f.ns, "marker", true)
	f.create(ctx, "marker")
	f.expectNext(ctx, "marker", "src is no longer referenced")
	f.expectForgotten("src", "no longer referenced")
}

// A relist (after a watch could not resume) finds what changed or went away
// while no watch ran, and enqueues exactly those.
func TestRelistFindsChangesAndDeletions(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFixture(t, "refwatch-relist")
	for _, n := range []string{"same", "changed", "deleted"} {
		f.refs.set(f.ns, n, true)
		f.create(ctx, n)
	}
	// No watch: list by hand, as run does.
	f.w = New(metadata.NewForConfigOrDie(cfg), corev1.SchemeGroupVersion.WithResource("secrets"), []string{f.ns}, nil, logr.Discard())
	f.q = workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer f.q.ShutDown()
	if err := f.w.Source(f.refs.ref).Start(ctx, f.q); err != nil {
		t.Fatal(err)
	}
	if _, err := f.w.list(ctx, f.ns, false); err != nil {
		t.Fatal(err)
	}
	if n := f.w.Len(); n != 3 {
		t.Fatalf("remembers %d, want 3", n)
	}
	f.update(ctx, "changed", "2")
	if err := f.cs.CoreV1().Secrets(f.ns).Delete(ctx, "deleted", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.w.list(ctx, f.ns, true); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for f.q.Len() > 0 {
		r, _ := f.q.Get()
		f.q.Done(r)
		got[r.Name] = true
	}
	if len(got) != 2 || !got["changed"] || !got["deleted"] {
		t.Fatalf("the relist enqueued %v, want exactly changed and deleted", got)
	}
	if n := f.w.Len(); n != 2 {
		t.Fatalf("remembers %d after the relist, want 2", n)
	}
}
