// Package refwatch watches one kind of object through its metadata and
// remembers only the objects something refers to.
//
// The operator must notice at once when a source Secret changes, but it
// reads a handful of a cluster's Secrets, and a cluster may hold hundreds of
// thousands. An informer (even a metadata-only one, even with a transform
// that keeps nothing but the name) stores an entry for every Secret, and its
// initial list holds them all in memory at once. The Watcher instead lists
// page by page and then watches, asks the referrers about each object it
// sees, and keeps the resourceVersion of the referenced ones only: an
// unrelated Secret costs memory for the length of one list page.
//
// A referrer that starts to refer to an object later (a new ExchangeAPIKey)
// reads the object itself and reports the version it read (Observed); every
// change after that reaches it, because the watch asks the referrers afresh
// for every event.
package refwatch

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/pager"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// PageSize is the number of objects one list request returns: the most
// unrelated objects the Watcher holds at any time.
const PageSize = 500

// Referrer names the requests that refer to namespace/name (none: nothing
// does). It is asked for every object the Watcher sees, so it must be cheap:
// an index lookup in a cache.
type Referrer func(ctx context.Context, namespace, name string) []reconcile.Request

// Watcher is a manager.Runnable. Build it with New, take a Source per
// controller before the manager starts, and add it to the manager.
type Watcher struct {
	client     metadata.Interface
	resource   schema.GroupVersionResource
	namespaces []string
	// ready blocks until the referrers can answer (their caches synced).
	ready func(ctx context.Context) bool
	log   logr.Logger

	mu       sync.Mutex
	versions map[types.NamespacedName]string
	subs     []*subscription
	synced   int
	syncedCh chan struct{}
}

type subscription struct {
	ref   Referrer
	queue workqueue.TypedRateLimitingInterface[reconcile.Request]
}

// New watches resource in namespaces (none: all). ready, when set, is
// waited for before the first list: referrers that read an informer cache
// must not answer from an empty one.
func New(client metadata.Interface, resource schema.GroupVersionResource, namespaces []string, ready func(ctx context.Context) bool, log logr.Logger) *Watcher {
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	return &Watcher{
		client: client, resource: resource, namespaces: namespaces, ready: ready, log: log,
		versions: map[types.NamespacedName]string{},
		syncedCh: make(chan struct{}),
	}
}

// Source registers ref and returns the source a controller watches: the
// requests ref names for an object that changed (or went away) after the
// Watcher's first list. Objects found by that first list enqueue nothing:
// a controller reconciles all its objects when it starts.
func (w *Watcher) Source(ref Referrer) source.Source {
	s := &subscription{ref: ref}
	w.mu.Lock()
	w.subs = append(w.subs, s)
	w.mu.Unlock()
	return &watcherSource{w: w, s: s}
}

// ResourceVersion is the last version seen of a referenced object; false
// when the Watcher knows none (not referenced when last seen, not listed
// yet, or gone).
func (w *Watcher) ResourceVersion(namespace, name string) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rv, ok := w.versions[types.NamespacedName{Namespace: namespace, Name: name}]
	return rv, ok
}

// Observed records the version of an object a referrer read itself, unless
// the watch already knows one (which is as new or newer: a version read
// before an event was delivered must not hide that event's version).
func (w *Watcher) Observed(namespace, name, resourceVersion string) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.versions[key]; !ok {
		w.versions[key] = resourceVersion
	}
}

// Len is the number of objects remembered (the referenced ones).
func (w *Watcher) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.versions)
}

// Start lists and watches until ctx ends (manager.Runnable).
func (w *Watcher) Start(ctx context.Context) error {
	if w.ready != nil && !w.ready(ctx) {
		if ctx.Err() != nil {
			return nil // stopped before it began
		}
		return errors.New("refwatch: the referrers' caches did not sync")
	}
	var wg sync.WaitGroup
	for _, ns := range w.namespaces {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx, ns)
		}()
	}
	wg.Wait()
	return nil
}

// NeedLeaderElection is false: a standby manager keeps the versions warm,
// like the caches, and only the leader's controllers have queues.
func (w *Watcher) NeedLeaderElection() bool { return false }

// WaitForSync blocks until every namespace was listed once.
func (w *Watcher) WaitForSync(ctx context.Context) error {
	select {
	case <-w.syncedCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run lists, then watches from the list's version; a watch that cannot go
// on (its version expired) starts over with a list, which also finds what
// changed or went away meanwhile.
func (w *Watcher) run(ctx context.Context, ns string) {
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 6, Cap: 30 * time.Second}
	first := true
	for ctx.Err() == nil {
		rv, err := w.list(ctx, ns, !first)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.log.Error(err, "listing failed; retrying", "resource", w.resource.Resource, "namespace", ns)
			if !sleep(ctx, backoff.Step()) {
				return
			}
			continue
		}
		backoff.Steps, backoff.Duration = 6, time.Second
		if first {
			first = false
			w.markSynced()
		}
		if err := w.watch(ctx, ns, rv); err != nil && ctx.Err() == nil {
			w.log.V(1).Info("watch ended; listing again", "resource", w.resource.Resource, "namespace", ns, "reason", err.Error())
		}
	}
}

// list pages through the objects, keeps the referenced ones' versions and
// returns the list's resourceVersion. notify: enqueue what changed since
// the last list (a relist), and what vanished.
func (w *Watcher) list(ctx context.Context, ns string, notify bool) (string, error) {
	var listRV string
	p := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		l, err := w.client.Resource(w.resource).Namespace(ns).List(ctx, opts)
		if err == nil && listRV == "" {
			// Every page of a paginated list is one snapshot, at the
			// first page's version.
			listRV = l.ResourceVersion
		}
		return l, err
	})
	p.PageSize = PageSize
	// One page in flight and one being read: the bound on what unrelated
	// objects cost while listing.
	p.PageBufferSize = 1
	seen := map[types.NamespacedName]bool{}
	err := p.EachListItem(ctx, metav1.ListOptions{}, func(o runtime.Object) error {
		m, ok := o.(*metav1.PartialObjectMetadata)
		if !ok {
			return nil
		}
		if w.observe(ctx, m.Namespace, m.Name, m.ResourceVersion, false, notify) {
			seen[types.NamespacedName{Namespace: m.Namespace, Name: m.Name}] = true
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	// What the Watcher remembered in ns but the list no longer has went
	// away while no watch ran.
	var gone []types.NamespacedName
	w.mu.Lock()
	for key := range w.versions {
		if (ns == metav1.NamespaceAll || key.Namespace == ns) && !seen[key] {
			gone = append(gone, key)
		}
	}
	w.mu.Unlock()
	for _, key := range gone {
		w.observe(ctx, key.Namespace, key.Name, "", true, notify)
	}
	return listRV, nil
}

// watch follows the changes from rv until the watch cannot resume.
func (w *Watcher) watch(ctx context.Context, ns, rv string) error {
	lw := &toolscache.ListWatch{WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
		return w.client.Resource(w.resource).Namespace(ns).Watch(ctx, opts)
	}}
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, rv, lw)
	if err != nil {
		return err
	}
	defer rw.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-rw.ResultChan():
			if !ok {
				return errors.New("watch closed")
			}
			switch ev.Type {
			case watch.Added, watch.Modified, watch.Deleted:
				if m, ok := ev.Object.(*metav1.PartialObjectMetadata); ok {
					w.observe(ctx, m.Namespace, m.Name, m.ResourceVersion, ev.Type == watch.Deleted, true)
				}
			case watch.Error:
				return apierrors.FromObject(ev.Object)
			}
		}
	}
}

// observe records one object's version if anything refers to it, forgets
// it otherwise, and enqueues the referring requests when notify is set and
// the version changed or the object went away. It reports whether the
// object is referenced.
func (w *Watcher) observe(ctx context.Context, ns, name, rv string, deleted, notify bool) bool {
	w.mu.Lock()
	subs := w.subs
	queues := make([]workqueue.TypedRateLimitingInterface[reconcile.Request], len(subs))
	for i, s := range subs {
		queues[i] = s.queue
	}
	w.mu.Unlock()
	hits := make([][]reconcile.Request, len(subs))
	referenced := false
	for i, s := range subs {
		hits[i] = s.ref(ctx, ns, name)
		referenced = referenced || len(hits[i]) > 0
	}
	key := types.NamespacedName{Namespace: ns, Name: name}
	w.mu.Lock()
	old, known := w.versions[key]
	if referenced && !deleted {
		w.versions[key] = rv
	} else {
		delete(w.versions, key)
	}
	w.mu.Unlock()
	if !referenced || !notify || (known && old == rv && !deleted) {
		return referenced
	}
	for i, q := range queues {
		if q == nil {
			continue
		}
		for _, r := range hits[i] {
			q.Add(r)
		}
	}
	return referenced
}

func (w *Watcher) markSynced() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.synced++
	if w.synced == len(w.namespaces) {
		close(w.syncedCh)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// watcherSource connects one subscription to a controller's queue.
type watcherSource struct {
	w *Watcher
	s *subscription
}

func (s *watcherSource) Start(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.s.queue = q
	return nil
}

func (s *watcherSource) String() string {
	return "refwatch " + s.w.resource.Resource
}
