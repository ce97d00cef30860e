//go:build faults

package faults

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
	"github.com/keyops-io/exchange-key-operator/internal/notify"
)

// recorder watches a namespace for the whole scenario and keeps every
// version of every Secret, Deployment, ExchangeAPIKey and Lease it sees:
// the invariants are about every state the cluster went through, not only
// the last one.
type recorder struct {
	mu          sync.Mutex
	secrets     []*corev1.Secret
	deployments []*appsv1.Deployment
	keys        []*keyopsv1.ExchangeAPIKey
	leases      []*coordinationv1.Lease
	// relists counts watches that had to start over from a list (a version
	// between the last seen and the list may have been missed).
	relists int
}

func startRecorder(ctx context.Context, ns string) *recorder {
	r := &recorder{}
	go r.watch(ctx, ns, func() client.ObjectList { return &corev1.SecretList{} }, func(o runtime.Object) {
		r.secrets = append(r.secrets, o.(*corev1.Secret))
	})
	go r.watch(ctx, ns, func() client.ObjectList { return &appsv1.DeploymentList{} }, func(o runtime.Object) {
		r.deployments = append(r.deployments, o.(*appsv1.Deployment))
	})
	go r.watch(ctx, ns, func() client.ObjectList { return &keyopsv1.ExchangeAPIKeyList{} }, func(o runtime.Object) {
		r.keys = append(r.keys, o.(*keyopsv1.ExchangeAPIKey))
	})
	go r.watch(ctx, ns, func() client.ObjectList { return &coordinationv1.LeaseList{} }, func(o runtime.Object) {
		r.leases = append(r.leases, o.(*coordinationv1.Lease))
	})
	return r
}

// watch lists once, then watches from the last resourceVersion seen,
// resuming after every interruption (API server restarts included).
func (r *recorder) watch(ctx context.Context, ns string, newList func() client.ObjectList, add func(runtime.Object)) {
	rv := ""
	retry := func() {
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	for ctx.Err() == nil {
		if rv == "" {
			l := newList()
			if err := cl.c.List(ctx, l, client.InNamespace(ns)); err != nil {
				retry()
				continue
			}
			r.mu.Lock()
			_ = meta.EachListItem(l, func(o runtime.Object) error { add(o.DeepCopyObject()); return nil })
			r.mu.Unlock()
			rv = l.GetResourceVersion()
		}
		w, err := cl.c.Watch(ctx, newList(), &client.ListOptions{Namespace: ns, Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
		if err != nil {
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				rv = ""
				r.mu.Lock()
				r.relists++
				r.mu.Unlock()
			}
			retry()
			continue
		}
		for ev := range w.ResultChan() {
			switch ev.Type {
			case watch.Added, watch.Modified, watch.Deleted:
				r.mu.Lock()
				add(ev.Object.DeepCopyObject())
				r.mu.Unlock()
				if o, ok := ev.Object.(client.Object); ok {
					rv = o.GetResourceVersion()
				}
			case watch.Bookmark:
				if o, ok := ev.Object.(client.Object); ok {
					rv = o.GetResourceVersion()
				}
			case watch.Error:
				if st, ok := ev.Object.(*metav1.Status); ok && (st.Code == http.StatusGone || st.Reason == metav1.StatusReasonExpired) {
					rv = ""
					r.mu.Lock()
					r.relists++
					r.mu.Unlock()
				}
			}
		}
		w.Stop()
		retry()
	}
}

// leaseHolders is the sequence of distinct (holder, transitions) states of
// the Lease named name, in the order seen; a released lease has holder "".
func (r *recorder) leaseHolders(name string) []leaseState {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []leaseState
	for _, l := range r.leases {
		if l.Name != name {
			continue
		}
		s := leaseState{}
		if l.Spec.HolderIdentity != nil {
			s.holder = *l.Spec.HolderIdentity
		}
		if l.Spec.LeaseTransitions != nil {
			s.transitions = *l.Spec.LeaseTransitions
		}
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

type leaseState struct {
	holder      string
	transitions int32
}

// hookReceiver is the scenario's loopback webhook: it keeps every delivery.
type hookReceiver struct {
	mu   sync.Mutex
	got  []notify.Message
	body [][]byte
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var m notify.Message
	if err := json.Unmarshal(b, &m); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, m)
	h.body = append(h.body, b)
}

// count is the number of reminders delivered for an ExchangeAPIKey's key.
func (h *hookReceiver) count(name, keyID string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.got {
		if m.Name == name && m.KeyID == keyID {
			n++
		}
	}
	return n
}

func (h *hookReceiver) messages() []notify.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]notify.Message(nil), h.got...)
}
