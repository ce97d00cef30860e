package metrics

import (
	"context"
	"fmt"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// KeyLister returns the ExchangeAPIKeys to report, as the cache holds them:
// shared, not copied, so callers only read them. A scrape every 15 s of
// 10,000 keys must not deep-copy every key's status (conditions, history)
// each time: that was most of a converging manager's garbage (issue #22).
type KeyLister func(ctx context.Context) ([]*keyopsv1.ExchangeAPIKey, error)

// InformerKeys lists the keys straight from the informer's store of c: no
// copy of the objects nor of a typed list's items (UnsafeDisableDeepCopy
// still copies each ExchangeAPIKey struct, ~1 KiB, into the list).
func InformerKeys(c cache.Cache) KeyLister {
	return func(ctx context.Context) ([]*keyopsv1.ExchangeAPIKey, error) {
		inf, err := c.GetInformer(ctx, &keyopsv1.ExchangeAPIKey{}, cache.BlockUntilSynced(false))
		if err != nil {
			return nil, err
		}
		s, ok := inf.(interface{ GetStore() toolscache.Store })
		if !ok {
			return ReaderKeys(c)(ctx)
		}
		objs := s.GetStore().List()
		out := make([]*keyopsv1.ExchangeAPIKey, 0, len(objs))
		for _, o := range objs {
			k, ok := o.(*keyopsv1.ExchangeAPIKey)
			if !ok {
				return nil, fmt.Errorf("the ExchangeAPIKey informer holds a %T", o)
			}
			out = append(out, k)
		}
		return out, nil
	}
}

// ReaderKeys lists the keys through r without deep copies (a cache-backed
// reader hands out its own objects).
func ReaderKeys(r client.Reader) KeyLister {
	return func(ctx context.Context) ([]*keyopsv1.ExchangeAPIKey, error) {
		var list keyopsv1.ExchangeAPIKeyList
		if err := r.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		out := make([]*keyopsv1.ExchangeAPIKey, len(list.Items))
		for i := range list.Items {
			out[i] = &list.Items[i]
		}
		return out, nil
	}
}
