// Package release checks what a release is made of, without making one: that
// the version sources agree (make release-check runs TestVersion) and that the
// GitHub workflows run the make targets this repository has and runs here.
package release

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const (
	chartDir  = "charts/exchange-key-operator"
	imageRepo = "ghcr.io/keyops-io/exchange-key-operator"
)

// kustomizations that set the manager's image.
var kustomizations = []string{"config/default/kustomization.yaml", "config/namespaced/operator/kustomization.yaml"}

var (
	semver       = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$`)
	releaseTitle = regexp.MustCompile(`^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?\s*$`)
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestVersion: the chart's version and appVersion, the image tags of config/
// and the chart's default image agree, and CHANGELOG.md has the version's
// section; with RELEASE_TAG=vX.Y.Z (release.yml), the tag is the version
// and its section is dated. (make release-check also checks the binary's
// --version.)
func TestVersion(t *testing.T) {
	for _, err := range checkVersions(repoRoot(t), os.Getenv("RELEASE_TAG")) {
		t.Error(err)
	}
}

// TestVersionMismatch: the check fails on each kind of disagreement.
func TestVersionMismatch(t *testing.T) {
	root := repoRoot(t)
	cases := []struct {
		name, file, old, new, tag, want string
	}{
		{"appVersion", chartDir + "/Chart.yaml", "\nappVersion: ", "\nappVersion: 9.9.9 #", "", "appVersion"},
		{"latest", chartDir + "/Chart.yaml", "\nappVersion: ", "\nappVersion: latest #", "", "not a release version"},
		{"kustomize tag", kustomizations[0], "newTag: ", "newTag: 9.9.9 #", "", "newTag"},
		{"values tag", chartDir + "/values.yaml", "  tag: \"\"", "  tag: latest", "", "image.tag"},
		{"tag", "", "", "", "v9.9.9", "RELEASE_TAG"},
		{"changelog", "CHANGELOG.md", "## [", "## old [", "", "CHANGELOG.md"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range append([]string{chartDir + "/Chart.yaml", chartDir + "/values.yaml", "CHANGELOG.md"}, kustomizations...) {
				b, err := os.ReadFile(filepath.Join(root, f))
				if err != nil {
					t.Fatal(err)
				}
				if f == tc.file {
					if !strings.Contains(string(b), tc.old) {
						t.Fatalf("%s has no %q", f, tc.old)
					}
					b = []byte(strings.ReplaceAll(string(b), tc.old, tc.new))
				}
				if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			errs := checkVersions(dir, tc.tag)
			if len(errs) == 0 {
				t.Fatalf("no error, want one about %s", tc.want)
			}
			if !strings.Contains(fmt.Sprint(errs), tc.want) {
				t.Errorf("errors %v, want one about %s", errs, tc.want)
			}
		})
	}
}

func readYAML(root, f string, v any) error {
	b, err := os.ReadFile(filepath.Join(root, f))
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", f, err)
	}
	return nil
}

func checkVersions(root, tag string) []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	var chart struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := readYAML(root, chartDir+"/Chart.yaml", &chart); err != nil {
		return append(errs, err)
	}
	v := chart.AppVersion
	if !semver.MatchString(v) {
		fail("Chart.yaml appVersion %q is not a release version X.Y.Z: the chart's default image tag is appVersion", v)
	}
	if chart.Version != v {
		fail("Chart.yaml version %q and appVersion %q differ: they are released together (RELEASING.md)", chart.Version, v)
	}

	var values struct {
		Image struct {
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
			Digest     string `json:"digest"`
		} `json:"image"`
	}
	if err := readYAML(root, chartDir+"/values.yaml", &values); err != nil {
		return append(errs, err)
	}
	if values.Image.Repository != imageRepo || values.Image.Tag != "" || values.Image.Digest != "" {
		fail("values.yaml image.repository %q, image.tag %q, image.digest %q: want %s, and an empty tag and digest so that the default is appVersion",
			values.Image.Repository, values.Image.Tag, values.Image.Digest, imageRepo)
	}

	for _, f := range kustomizations {
		var k struct {
			Images []struct {
				Name    string `json:"name"`
				NewName string `json:"newName"`
				NewTag  string `json:"newTag"`
			} `json:"images"`
		}
		if err := readYAML(root, f, &k); err != nil {
			errs = append(errs, err)
			continue
		}
		found := false
		for _, i := range k.Images {
			if i.Name != "controller" {
				continue
			}
			found = true
			if i.NewName != imageRepo || i.NewTag != v {
				fail("%s: image newName:newTag %s:%s, want %s:%s (the chart's appVersion)", f, i.NewName, i.NewTag, imageRepo, v)
			}
		}
		if !found {
			fail("%s: no images entry for controller (newTag)", f)
		}
	}

	if tag != "" && tag != "v"+v {
		fail("RELEASE_TAG %s is not v + the chart's appVersion %s: bump Chart.yaml (RELEASING.md)", tag, v)
	}

	b, err := os.ReadFile(filepath.Join(root, "CHANGELOG.md"))
	if err != nil {
		return append(errs, err)
	}
	sections := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if m := releaseTitle.FindStringSubmatch(l); m != nil {
			sections[m[1]] = m[2]
		}
	}
	date, ok := sections[v]
	switch {
	case tag != "" && (!ok || date == ""):
		fail("CHANGELOG.md has no dated section \"## [%s] - YYYY-MM-DD\" for the release", v)
	case !ok && !hasKey(sections, "Unreleased"):
		fail("CHANGELOG.md has neither \"## [Unreleased]\" nor \"## [%s]\"", v)
	}
	return errs
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}
