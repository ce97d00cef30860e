package operator

import (
	"runtime/debug"
	"testing"
)

func TestSetGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })

	if p, def := SetGCPercent(func(string) string { return "" }); p != DefaultGCPercent || !def {
		t.Fatalf("without GOGC: %d (default %v), want %d", p, def, DefaultGCPercent)
	}
	if got := debug.SetGCPercent(DefaultGCPercent); got != DefaultGCPercent {
		t.Fatalf("runtime GC percent %d after SetGCPercent, want %d", got, DefaultGCPercent)
	}

	// A user's GOGC is left as the runtime read it.
	debug.SetGCPercent(200)
	if p, def := SetGCPercent(func(k string) string {
		if k == "GOGC" {
			return "200"
		}
		return ""
	}); p != 200 || def {
		t.Fatalf("with GOGC=200: %d (default %v), want 200, not the default", p, def)
	}
	if got := debug.SetGCPercent(200); got != 200 {
		t.Fatalf("runtime GC percent %d, want the user's 200", got)
	}
}
