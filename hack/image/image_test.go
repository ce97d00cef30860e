package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"debug/buildinfo"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The image test builds the image twice from this checkout, as `make image`
// does (the Go build cache makes the second build, and every later run, a
// matter of linking), and checks the result.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the manager for two platforms")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	version := chartAppVersion(t, root)
	o := Options{
		Dir: root, Package: "./cmd", Version: version,
		Revision:  "0123456789abcdef0123456789abcdef01234567",
		Source:    "https://github.com/keyops-io/exchange-key-operator",
		Ref:       "ghcr.io/keyops-io/exchange-key-operator:" + version,
		Created:   time.Unix(1796655353, 0).UTC(),
		Platforms: []string{"linux/amd64", "linux/arm64"},
	}
	ctx := context.Background()
	o.Out = filepath.Join(t.TempDir(), "a")
	first, err := Build(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	o2 := o
	o2.Out = filepath.Join(t.TempDir(), "b")
	second, err := Build(ctx, o2)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := first.Digest()
	d2, _ := second.Digest()
	t.Logf("index digests: %s, %s", d1, d2)
	if d1 != d2 {
		t.Errorf("two builds of the same source: index digests %s and %s", d1, d2)
	}
	for _, f := range []string{"exchange-key-operator.oci.tar", "docker/linux-amd64.tar", "docker/linux-arm64.tar"} {
		a, _ := os.ReadFile(filepath.Join(o.Out, f))
		b, _ := os.ReadFile(filepath.Join(o2.Out, f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s: empty or differs between the two builds", f)
		}
	}

	// What a user gets: the layout on disk, read back.
	lp, err := layout.FromPath(filepath.Join(o.Out, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	outer, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	om, err := outer.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(om.Manifests) != 1 || om.Manifests[0].Digest != d1 {
		t.Fatalf("layout index.json: %+v, want the one index %s", om.Manifests, d1)
	}
	if got := om.Manifests[0].Annotations["io.containerd.image.name"]; got != o.Ref {
		t.Errorf("image name annotation %q, want %q", got, o.Ref)
	}
	idx, err := outer.ImageIndex(d1)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if got := im.Annotations["org.opencontainers.image.version"]; got != version {
		t.Errorf("index annotation version = %q, want %q", got, version)
	}
	platforms := map[string]v1.Hash{}
	for _, m := range im.Manifests {
		platforms[m.Platform.String()] = m.Digest
	}
	if len(platforms) != 2 || platforms["linux/amd64"] == (v1.Hash{}) || platforms["linux/arm64"] == (v1.Hash{}) {
		t.Fatalf("platforms %v, want linux/amd64 and linux/arm64", platforms)
	}
	for plat, d := range platforms {
		t.Run(plat, func(t *testing.T) {
			img, err := idx.Image(d)
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, img, o, plat)
			// The docker tarball holds the same image: the same config (a
			// docker tarball has no manifest of its own to compare).
			arch := strings.TrimPrefix(plat, "linux/")
			timg, err := tarball.ImageFromPath(filepath.Join(o.Out, "docker", "linux-"+arch+".tar"), nil)
			if err != nil {
				t.Fatal(err)
			}
			tc, _ := timg.ConfigName()
			ic, _ := img.ConfigName()
			if tc != ic {
				t.Errorf("docker/linux-%s.tar has config %s, the index's image %s", arch, tc, ic)
			}
		})
	}
}

func checkImage(t *testing.T, img v1.Image, o Options, plat string) {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.OS + "/" + cf.Architecture; got != plat {
		t.Errorf("config platform %s", got)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", cf.Config.User)
	}
	if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/manager" || len(cf.Config.Cmd) != 0 {
		t.Errorf("entrypoint %q cmd %q, want [/manager] and none", cf.Config.Entrypoint, cf.Config.Cmd)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.source":   o.Source,
		"org.opencontainers.image.revision": o.Revision,
		"org.opencontainers.image.version":  o.Version,
		"org.opencontainers.image.created":  "2026-12-07T14:55:53Z",
	} {
		if got := cf.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if !cf.Created.Equal(o.Created) {
		t.Errorf("created %s, want %s", cf.Created.Time, o.Created)
	}

	// The one file of the image: /manager, root-owned, executable.
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var bin []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != "manager" {
			t.Errorf("unexpected file %s in the image", h.Name)
			continue
		}
		if h.Mode != 0o755 || h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("/manager: mode %o uid %d gid %d mtime %s", h.Mode, h.Uid, h.Gid, h.ModTime)
		}
		if bin, err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
	if bin == nil {
		t.Fatal("no /manager in the image")
	}
	path := filepath.Join(t.TempDir(), "manager")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}

	// A static executable for the platform: no ELF interpreter (CGO off).
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	wantMachine := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64}[plat]
	if ef.Machine != wantMachine {
		t.Errorf("ELF machine %s, want %s", ef.Machine, wantMachine)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("dynamically linked: has an ELF interpreter")
		}
	}
	ef.Close()

	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("build settings %v, want CGO_ENABLED=0 and -trimpath", settings)
	}

	// The CA roots are in the binary: the fallback bundle is linked in, and
	// a well-known root's certificate is among the bytes of the executable.
	// Go uses them when the system has no roots, as in this image.
	linked := false
	for _, d := range bi.Deps {
		linked = linked || d.Path == "golang.org/x/crypto/x509roots/fallback"
	}
	if !linked {
		t.Errorf("golang.org/x/crypto/x509roots/fallback is not linked into the manager: no CA roots in the image")
	}
	isrg := wellKnownRoot(t, "ISRG Root X1")
	if !bytes.Contains(bin, isrg.Raw) {
		t.Errorf("the manager binary does not contain the ISRG Root X1 certificate")
	}

	// The binary the image runs reports the version the build stamped.
	if plat == runtime.GOOS+"/"+runtime.GOARCH {
		out, err := exec.Command(path, "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("/manager --version: %v: %s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != o.Version {
			t.Errorf("/manager --version = %q, want %q", got, o.Version)
		}
	}
}

// wellKnownRoot returns the root certificate with this common name from the
// embedded bundle, after checking that the bundle is a usable pool: many
// roots, each verifying as a trust anchor.
func wellKnownRoot(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	pool := x509.NewCertPool()
	var found *x509.Certificate
	n := 0
	for r := range bundle.Roots() {
		c, err := x509.ParseCertificate(r.Certificate)
		if err != nil {
			t.Fatal(err)
		}
		pool.AddCert(c)
		n++
		if c.Subject.CommonName == cn {
			found = c
		}
	}
	if n < 100 {
		t.Errorf("%d roots in the bundle, want the Mozilla set (over 100)", n)
	}
	if found == nil {
		t.Fatalf("no %s in the bundle", cn)
	}
	if _, err := found.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: found.NotBefore.Add(time.Hour)}); err != nil {
		t.Errorf("%s does not verify against the embedded roots: %v", cn, err)
	}
	return found
}

var appVersionRE = regexp.MustCompile(`(?m)^appVersion:\s*"?([^"\s]+)"?\s*$`)

func chartAppVersion(t *testing.T, root string) string {
	b, err := os.ReadFile(filepath.Join(root, "charts/exchange-key-operator/Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := appVersionRE.FindSubmatch(b)
	if m == nil {
		t.Fatal("no appVersion in Chart.yaml")
	}
	return string(m[1])
}
