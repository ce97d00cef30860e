package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	keyopsv1 "github.com/keyops-io/exchange-key-operator/api/v1alpha1"
)

// One control plane, started by the first test that needs it, serves every
// test; each works in a namespace of its own. No manager runs: the tests
// write the status the plugin reads.
var (
	clusterOnce sync.Once
	clusterErr  error
	env         *envtest.Environment
	k8s         client.Client
	kubeconfig  string
	nsCounter   atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		_ = env.Stop()
	}
	if kubeconfig != "" {
		_ = os.RemoveAll(filepath.Dir(kubeconfig))
	}
	os.Exit(code)
}

// cluster starts envtest once and returns a client and a kubeconfig file
// for the plugin's --kubeconfig.
func cluster(t *testing.T) (client.Client, string) {
	t.Helper()
	clusterOnce.Do(func() {
		if os.Getenv("KUBEBUILDER_ASSETS") == "" {
			clusterErr = fmt.Errorf("KUBEBUILDER_ASSETS is not set: run the tests with `make test` (hack/envtest-assets.sh)")
			return
		}
		env = &envtest.Environment{
			CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
			ErrorIfCRDPathMissing: true,
		}
		cfg, err := env.Start()
		if err != nil {
			clusterErr = fmt.Errorf("starting envtest: %w", err)
			return
		}
		scheme := runtime.NewScheme()
		_ = clientgoscheme.AddToScheme(scheme)
		_ = eventsv1.AddToScheme(scheme)
		_ = keyopsv1.AddToScheme(scheme)
		if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
			clusterErr = err
			return
		}
		// The plugin gets to the API server the way a user does: through a
		// kubeconfig file.
		user, err := env.AddUser(envtest.User{Name: "eak-admin", Groups: []string{"system:masters"}}, nil)
		if err != nil {
			clusterErr = err
			return
		}
		data, err := user.KubeConfig()
		if err != nil {
			clusterErr = err
			return
		}
		dir, err := os.MkdirTemp("", "kubectl-eak-test")
		if err != nil {
			clusterErr = err
			return
		}
		kubeconfig = filepath.Join(dir, "kubeconfig")
		clusterErr = os.WriteFile(kubeconfig, data, 0o600)
	})
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return k8s, kubeconfig
}

// newNamespace creates a namespace for one test.
func newNamespace(t *testing.T) string {
	t.Helper()
	c, _ := cluster(t)
	name := fmt.Sprintf("t%d-%s", nsCounter.Add(1), strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	if len(name) > 60 {
		name = strings.TrimRight(name[:60], "-")
	}
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// result is one run of the plugin.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs the plugin as `kubectl eak ARGS` would, with stdin.
func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Execute(args, genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errOut})
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// kubectl runs a command against the test cluster.
func kubectl(t *testing.T, args ...string) result {
	t.Helper()
	_, kc := cluster(t)
	return run(t, "", append([]string{"--kubeconfig", kc}, args...)...)
}
