package keyid

import (
	"strings"
	"testing"
)

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A": "vmPU...Eh8A",
		"short":         "****",
		"exactly12char": "exac...char",
		"":              "****",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFingerprintNeverContainsKey(t *testing.T) {
	key := "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
	fp := Fingerprint(key)
	if !strings.HasPrefix(fp, "sha256:") || len(fp) != len("sha256:")+64 {
		t.Fatalf("unexpected fingerprint form %q", fp)
	}
	if strings.Contains(fp, key[:8]) {
		t.Fatal("fingerprint contains key material")
	}
	if Fingerprint(key) != fp || Fingerprint(key+"x") == fp {
		t.Fatal("fingerprint not deterministic or not distinct")
	}
	if got := Short(fp); len(got) != 12 {
		t.Fatalf("Short = %q", got)
	}
}
