package release

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

type workflow struct {
	// YAML 1.1 (sigs.k8s.io/yaml) reads the key on as true.
	On          map[string]any         `json:"true"`
	Permissions map[string]string      `json:"permissions"`
	Jobs        map[string]workflowJob `json:"jobs"`
	Env         map[string]string      `json:"env"`
}

type workflowJob struct {
	Permissions map[string]string `json:"permissions"`
	Steps       []struct {
		Uses string            `json:"uses"`
		Run  string            `json:"run"`
		With map[string]any    `json:"with"`
		Env  map[string]string `json:"env"`
	} `json:"steps"`
}

// runs is every run script and every action used, in order.
func (w workflow) runs() (runs, uses []string) {
	names := make([]string, 0, len(w.Jobs))
	for n := range w.Jobs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, s := range w.Jobs[n].Steps {
			if s.Run != "" {
				runs = append(runs, s.Run)
			}
			if s.Uses != "" {
				uses = append(uses, s.Uses)
			}
		}
	}
	return runs, uses
}

func loadWorkflow(t *testing.T, name string) workflow {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), ".github/workflows", name))
	if err != nil {
		t.Fatal(err)
	}
	var w workflow
	if err := yaml.Unmarshal(b, &w); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return w
}

var (
	makeTargetRE = regexp.MustCompile(`(?m)^([a-zA-Z0-9][a-zA-Z0-9_.-]*):`)
	makeCallRE   = regexp.MustCompile(`(?m)(?:^|[;&|(]\s*|\$\(\s*)make((?:\s+[^\s;&|)]+)*)`)
)

// makeTargets are the targets the Makefile defines.
func makeTargets(t *testing.T) map[string]bool {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, m := range makeTargetRE.FindAllStringSubmatch(string(b), -1) {
		targets[m[1]] = true
	}
	return targets
}

// makeCalls are the targets of the make commands in a script.
func makeCalls(script string) []string {
	var targets []string
	for _, l := range strings.Split(script, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		for _, m := range makeCallRE.FindAllStringSubmatch(l, -1) {
			for _, a := range strings.Fields(m[1]) {
				if strings.HasPrefix(a, "-") || strings.Contains(a, "=") {
					continue
				}
				targets = append(targets, a)
			}
		}
	}
	return targets
}

// TestWorkflows: the workflows run what runs here. CI runs .ci/run (the
// make targets a developer runs) with Go from go.mod and Node.js 20; the
// release builds with `make image` and checks with `make release-check`;
// every make target any workflow calls exists. actionlint (make actionlint,
// a prerequisite of make test) checks the rest of their syntax.
func TestWorkflows(t *testing.T) {
	targets := makeTargets(t)
	entries, err := os.ReadDir(filepath.Join(repoRoot(t), ".github/workflows"))
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string][]string{}
	for _, e := range entries {
		w := loadWorkflow(t, e.Name())
		runs, _ := w.runs()
		for _, r := range runs {
			for _, c := range makeCalls(r) {
				calls[e.Name()] = append(calls[e.Name()], c)
				if !targets[c] {
					t.Errorf("%s runs make %s: no such target in the Makefile", e.Name(), c)
				}
			}
			// The scripts make and the workflows share.
			for _, s := range regexp.MustCompile(`(?:^|\s)(\.ci/[\w.-]+|hack/[\w./-]+\.sh)`).FindAllStringSubmatch(r, -1) {
				if _, err := os.Stat(filepath.Join(repoRoot(t), s[1])); err != nil {
					t.Errorf("%s runs %s: %v", e.Name(), s[1], err)
				}
			}
		}
	}

	// What CI runs here: .ci/run's make targets.
	ciRun, err := os.ReadFile(filepath.Join(repoRoot(t), ".ci/run"))
	if err != nil {
		t.Fatal(err)
	}
	// make tools may come first (it only fetches and builds the pinned
	// tools); the first make that tests is make test.
	ciTargets := makeCalls(string(ciRun))
	firstTest := slices.IndexFunc(ciTargets, func(c string) bool { return c != "tools" })
	if firstTest < 0 || ciTargets[firstTest] != "test" {
		t.Errorf(".ci/run runs make %v, want make test before any other test target", ciTargets)
	}
	for _, c := range ciTargets {
		if !targets[c] {
			t.Errorf(".ci/run runs make %s: no such target", c)
		}
	}

	ci := loadWorkflow(t, "ci.yml")
	if _, ok := ci.On["pull_request"]; !ok {
		t.Errorf("ci.yml does not run on pull requests")
	}
	if push, _ := ci.On["push"].(map[string]any); push == nil || !strings.Contains(strings.Join(toStrings(push["branches"]), ","), "main") {
		t.Errorf("ci.yml does not run on pushes to main: %v", ci.On["push"])
	}
	runs, _ := ci.runs()
	if !contains(runs, ".ci/run") {
		t.Errorf("ci.yml does not run .ci/run: %q", runs)
	}
	wantWith(t, ci, "actions/setup-go@", "go-version-file", "go.mod")
	wantWith(t, ci, "actions/setup-node@", "node-version", "20")

	rel := loadWorkflow(t, "release.yml")
	push, _ := rel.On["push"].(map[string]any)
	if push == nil || strings.Join(toStrings(push["tags"]), ",") != "v*" {
		t.Errorf("release.yml runs on %v, want push of tags v*", rel.On)
	}
	for _, want := range []string{"release-check", "image", "chart"} {
		if !containsString(calls["release.yml"], want) {
			t.Errorf("release.yml does not run make %s", want)
		}
	}
	runs, uses := rel.runs()
	for _, want := range []string{`make release-check RELEASE_TAG="${GITHUB_REF_NAME}"`, "crane push --index bin/image/oci", "cat bin/image/digest", "cosign sign", `${helm}" push`, "gh release create"} {
		if !contains(runs, want) {
			t.Errorf("release.yml runs no %q", want)
		}
	}
	for _, want := range []string{"sigstore/cosign-installer@", "anchore/sbom-action@", "actions/attest-sbom@", "actions/attest-build-provenance@"} {
		if !contains(uses, want) {
			t.Errorf("release.yml uses no %s", want)
		}
	}
	for _, j := range rel.Jobs {
		for p, want := range map[string]string{"id-token": "write", "packages": "write", "contents": "write", "attestations": "write"} {
			if j.Permissions[p] != want {
				t.Errorf("release job permission %s = %q, want %s", p, j.Permissions[p], want)
			}
		}
	}
	if rel.Env["IMAGE_REPO"] != imageRepo {
		t.Errorf("release.yml IMAGE_REPO = %q, want %s (the chart's image.repository)", rel.Env["IMAGE_REPO"], imageRepo)
	}
}

func wantWith(t *testing.T, w workflow, action, key, want string) {
	t.Helper()
	for _, j := range w.Jobs {
		for _, s := range j.Steps {
			if strings.HasPrefix(s.Uses, action) {
				if got := s.With[key]; got == nil || strings.TrimSpace(strings.Trim(toStrings(got)[0], `"`)) != want {
					t.Errorf("%s with %s = %v, want %s", action, key, got, want)
				}
				return
			}
		}
	}
	t.Errorf("no step uses %s", action)
}

func toStrings(v any) []string {
	switch v := v.(type) {
	case []any:
		var s []string
		for _, e := range v {
			s = append(s, toStrings(e)...)
		}
		return s
	case nil:
		return nil
	default:
		return []string{strings.TrimSpace(fmt.Sprint(v))}
	}
}

func contains(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
