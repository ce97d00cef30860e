package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// startAPIServerProfile collects one CPU profile of kube-apiserver (its
// /debug/pprof, on by default, open to system:masters) over the seconds a
// phase is expected to last, into dir/name.apiserver.cpu.pb.gz: where the
// API server's CPU goes is where a convergence bound by it can be cut.
// The returned func waits for the profile; nil without --pprof.
func (b *bench) startAPIServerProfile(ctx context.Context, dir, name string, d time.Duration) func() {
	if dir == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		secs := fmt.Sprint(max(1, int(d.Seconds())))
		raw, err := b.cl.cs.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", secs).Timeout(d + 30*time.Second).DoRaw(ctx)
		if err != nil {
			b.logf("kube-apiserver profile: %v", err)
			return
		}
		f := filepath.Join(dir, name+".apiserver.cpu.pb.gz")
		if err := os.WriteFile(f, raw, 0o644); err == nil {
			b.topProfile(ctx, f)
		}
	}()
	return func() { <-done }
}
