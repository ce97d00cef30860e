// Command image builds the manager's multi-arch OCI image from Go alone: no
// container engine, no base image. `make image` runs it.
//
// Each platform's image has one layer, /manager: the static manager binary
// (CGO_ENABLED=0, -trimpath, the version stamped with -ldflags). The CA roots
// it needs to reach the exchanges are compiled into the binary
// (golang.org/x/crypto/x509roots/fallback, imported by cmd/main.go), so the
// image needs no /etc/ssl. It runs as 65532:65532 (numeric, so no
// /etc/passwd is needed and runAsNonRoot can check it), entrypoint /manager,
// with the org.opencontainers.image.* labels.
//
// The build is reproducible: tar entries have fixed owners, modes and mtimes,
// the created time is --created (SOURCE_DATE_EPOCH, the commit time), and the
// Go build is reproducible with -trimpath and no VCS stamping; the same
// source gives the same digests.
//
// It writes, under --out (bin/image):
//
//	oci/                           OCI image layout, the multi-arch index (crane push --index)
//	exchange-key-operator.oci.tar  the same layout as a tar (kind load image-archive, docker load with Docker 25+)
//	docker/linux-ARCH.tar          one platform as a `docker save` tarball (docker load, any version)
//	digest                         the index digest
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// versionVar is the variable the version is stamped into.
const versionVar = "github.com/keyops-io/exchange-key-operator/internal/operator.Version"

// User is the image's numeric non-root user, as config/manager and the
// chart's pod securityContext expect.
const User = "65532:65532"

// Entrypoint is the path of the manager binary in the image.
const Entrypoint = "/manager"

// Options describe one build.
type Options struct {
	// Dir is the module root; Package the manager's main package in it.
	Dir, Package string
	// Version is stamped into the binary and labelled; Revision and Source
	// are labelled.
	Version, Revision, Source string
	// Ref names the image (repository:tag) in the layout's annotations and
	// the docker tarballs.
	Ref string
	// Created is the images' created time (fixed, for reproducibility).
	Created time.Time
	// Platforms are os/arch, e.g. linux/amd64.
	Platforms []string
	// Out is the output directory; it is replaced.
	Out string
}

// Build builds the binaries and the images and writes them under o.Out.
func Build(ctx context.Context, o Options) (v1.ImageIndex, error) {
	ref, err := name.NewTag(o.Ref)
	if err != nil {
		return nil, fmt.Errorf("--ref: %w", err)
	}
	if err := os.RemoveAll(o.Out); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(o.Out, "docker"), 0o755); err != nil {
		return nil, err
	}
	labels := map[string]string{
		"org.opencontainers.image.title":       "exchange-key-operator",
		"org.opencontainers.image.description": "Kubernetes operator that validates, enforces and rotates crypto-exchange API keys",
		"org.opencontainers.image.source":      o.Source,
		"org.opencontainers.image.url":         o.Source,
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.created":     o.Created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range o.Platforms {
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, err
		}
		bin := filepath.Join(o.Out, "manager-"+plat.OS+"-"+plat.Architecture)
		if err := buildBinary(ctx, o, plat, bin); err != nil {
			return nil, err
		}
		img, err := platformImage(o, plat, bin, labels)
		if err != nil {
			return nil, err
		}
		if err := tarball.WriteToFile(filepath.Join(o.Out, "docker", plat.OS+"-"+plat.Architecture+".tar"), ref, img); err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plat}})
	}
	idx = mutate.Annotations(idx, labels).(v1.ImageIndex)

	dir := filepath.Join(o.Out, "oci")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return nil, err
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		// containerd (kind load, ctr import) and Docker 25+ name the image
		// after this one; the OCI annotation is the tag.
		"io.containerd.image.name":          ref.String(),
		"org.opencontainers.image.ref.name": ref.TagStr(),
	})); err != nil {
		return nil, err
	}
	if err := tarDir(dir, filepath.Join(o.Out, "exchange-key-operator.oci.tar")); err != nil {
		return nil, err
	}
	d, err := idx.Digest()
	if err != nil {
		return nil, err
	}
	return idx, os.WriteFile(filepath.Join(o.Out, "digest"), []byte(d.String()+"\n"), 0o644)
}

func buildBinary(ctx context.Context, o Options, plat *v1.Platform, out string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -X "+versionVar+"="+o.Version,
		"-o", abs, o.Package)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+plat.OS, "GOARCH="+plat.Architecture, "GOFLAGS=-mod=readonly")
	if plat.Architecture == "arm64" {
		cmd.Env = append(cmd.Env, "GOARM64=v8.0")
	}
	if plat.Architecture == "amd64" {
		cmd.Env = append(cmd.Env, "GOAMD64=v1")
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for %s: %w", plat, err)
	}
	return nil
}

// platformImage is the image of one platform: the binary as its only layer.
func platformImage(o Options, plat *v1.Platform, bin string, labels map[string]string) (v1.Image, error) {
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     strings.TrimPrefix(Entrypoint, "/"),
		Mode:     0o755,
		Size:     int64(len(b)),
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatUSTAR,
	}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(b); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: o.Created.UTC()}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created:   created,
		CreatedBy: "hack/image: go build -trimpath -o /manager ./cmd (CGO_ENABLED=0)",
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	cf.Created = created
	cf.Config = v1.Config{
		User:       User,
		Entrypoint: []string{Entrypoint},
		WorkingDir: "/",
		Labels:     labels,
	}
	return mutate.ConfigFile(img, cf)
}

// tarDir writes dir as a tar with sorted entries, fixed owners and mtimes.
func tarDir(dir, out string) error {
	var paths []string
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		paths = append(paths, p)
		return nil
	}); err != nil {
		return err
	}
	sort.Strings(paths)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if fi.IsDir() {
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, fi.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		r, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, r)
		r.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// sourceDateEpoch is SOURCE_DATE_EPOCH, or the Unix epoch.
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
	}
	return time.Unix(n, 0).UTC(), nil
}

func main() {
	var o Options
	var platforms string
	flag.StringVar(&o.Dir, "dir", ".", "Module root.")
	flag.StringVar(&o.Package, "package", "./cmd", "The manager's main package.")
	flag.StringVar(&o.Version, "version", "", "Version to stamp and label (required).")
	flag.StringVar(&o.Revision, "revision", "", "Source revision to label (the commit).")
	flag.StringVar(&o.Source, "source", "https://github.com/keyops-io/exchange-key-operator", "Source repository to label.")
	flag.StringVar(&o.Ref, "ref", "", "Image reference REPOSITORY:TAG (required).")
	flag.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "Comma-separated platforms.")
	flag.StringVar(&o.Out, "out", "bin/image", "Output directory (replaced).")
	flag.Parse()
	if o.Version == "" || o.Ref == "" {
		fmt.Fprintln(os.Stderr, "--version and --ref are required")
		os.Exit(2)
	}
	var err error
	if o.Created, err = sourceDateEpoch(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	o.Platforms = strings.Split(platforms, ",")
	idx, err := Build(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	d, _ := idx.Digest()
	m, _ := idx.IndexManifest()
	fmt.Printf("%s@%s\n", o.Ref, d)
	for _, desc := range m.Manifests {
		fmt.Printf("  %s: %s\n", desc.Platform, desc.Digest)
	}
	fmt.Printf("wrote %s/{oci,exchange-key-operator.oci.tar,docker/*.tar}\n", o.Out)
}
