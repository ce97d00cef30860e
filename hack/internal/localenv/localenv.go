// Package localenv starts the local control plane (envtest's kube-apiserver
// and etcd, built by hack/envtest-assets.sh) with the operator's CRDs
// installed, for the demo and the benchmark.
package localenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// RepoRoot is the repository the command runs in: the first directory at
// or above the working directory that holds the kubebuilder PROJECT file.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "PROJECT")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("run from inside the repository (no PROJECT file above %s)", dir)
}

// Start starts kube-apiserver and etcd with the CRDs of root's
// config/crd/bases installed. makeTarget names the make target that
// provides the binaries, for the error when KUBEBUILDER_ASSETS is unset.
func Start(root, makeTarget string) (*envtest.Environment, *rest.Config, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, nil, errors.New("KUBEBUILDER_ASSETS is not set: run `make " + makeTarget + "`, which provides kube-apiserver and etcd (hack/envtest-assets.sh)")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("starting the local control plane: %w", err)
	}
	return env, cfg, nil
}
