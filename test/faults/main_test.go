//go:build faults

package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/keyops-io/exchange-key-operator/internal/exchange"
	"github.com/keyops-io/exchange-key-operator/internal/exchange/simulator"
	"github.com/keyops-io/exchange-key-operator/internal/operator"
)

// One control plane, one simulator and one manager binary serve every
// scenario; each scenario works in a namespace of its own with managers of
// its own. Scenarios run one after the other: one of them restarts the API
// server.
var (
	cl         *cluster
	sim        *simulator.Simulator
	simURL     string
	managerBin string
	// artifacts holds manager logs; kept when a test fails (or with
	// FAULTS_ARTIFACTS=dir), removed otherwise.
	artifacts string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run the suite with `make test-faults`")
		return 1
	}
	// envtest logs through controller-runtime; the managers log to files.
	ctrllog.SetLogger(logr.Discard())
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	artifacts = os.Getenv("FAULTS_ARTIFACTS")
	keep := artifacts != ""
	if artifacts == "" {
		if artifacts, err = os.MkdirTemp("", "keyops-faults-"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	} else if err := os.MkdirAll(artifacts, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	managerBin = filepath.Join(artifacts, "manager")
	build := exec.Command("go", "build", "-o", managerBin, "./cmd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd: %v\n%s", err, out)
		return 1
	}
	if cl, err = startCluster(root, artifacts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cl.stop()
	sim = simulator.New()
	srv := httptest.NewServer(sim)
	defer srv.Close()
	simURL = srv.URL

	code := m.Run()
	if code == 0 && !keep {
		_ = os.RemoveAll(artifacts)
	} else {
		fmt.Fprintln(os.Stderr, "manager logs and artifacts are in", artifacts)
	}
	return code
}

// cluster is the envtest control plane and the test's own admin client.
type cluster struct {
	env *envtest.Environment
	cfg *rest.Config
	c   client.WithWatch
	// kubeconfig is the managers' (a user of its own in system:masters).
	kubeconfig string
}

func startCluster(root, dir string) (*cluster, error) {
	// A CertDir of our own survives an API server restart: envtest would
	// otherwise make a new serving CA that no client trusts.
	certDir := filepath.Join(dir, "apiserver")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	apiLog, err := os.Create(filepath.Join(dir, "kube-apiserver.log"))
	if err != nil {
		return nil, err
	}
	api := &envtest.APIServer{CertDir: certDir, Out: apiLog, Err: apiLog}
	// Watches are served by etcd, which resumes a watch from any revision
	// after an API server restart; a restarted API server's watch cache
	// refuses revisions older than itself, and the recorder would miss the
	// versions in between.
	api.Configure().Set("watch-cache", "false")
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		ControlPlane:          envtest.ControlPlane{APIServer: api},
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	c := &cluster{env: env}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0
	cfg.UserAgent = "keyops-faults"
	c.cfg = cfg
	if c.c, err = client.NewWithWatch(cfg, client.Options{Scheme: operator.Scheme()}); err != nil {
		_ = env.Stop()
		return nil, err
	}
	u, err := env.AddUser(envtest.User{Name: "exchange-key-operator", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	kc, err := u.KubeConfig()
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	c.kubeconfig = filepath.Join(dir, "manager.kubeconfig")
	if err := os.WriteFile(c.kubeconfig, kc, 0o600); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return c, nil
}

func (c *cluster) stop() { _ = c.env.Stop() }

// restartAPIServer stops kube-apiserver (etcd keeps running) and starts it
// again on the same address with the same certificates. The stop is a
// SIGTERM; if the process is still there after 5 s it is SIGKILLed (with
// watches served by etcd, a terminating kube-apiserver waits for them to
// time out). It returns how the process ended.
func (c *cluster) restartAPIServer() (string, error) {
	pid := childPID("kube-apiserver")
	if pid == 0 {
		return "", errors.New("no kube-apiserver child process found")
	}
	how := "exited on SIGTERM"
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if err := pollErr(5*time.Second, func() error { return running(pid) }); err != nil {
		how = "still running 5 s after SIGTERM; SIGKILLed"
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if err := pollErr(10*time.Second, func() error { return running(pid) }); err != nil {
			return how, err
		}
	}
	api := c.env.ControlPlane.APIServer
	// envtest sees its process gone and only tidies up.
	if err := api.Stop(); err != nil {
		return how, fmt.Errorf("stopping kube-apiserver: %w", err)
	}
	if err := api.Start(); err != nil {
		return how, fmt.Errorf("starting kube-apiserver again: %w", err)
	}
	return how, nil
}

// childPID finds a child process of the test by command name.
func childPID(comm string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == os.Getpid() && s[open+1:end] == comm {
			return pid
		}
	}
	return 0
}

// running is nil once the process has exited (gone, or a zombie not yet
// reaped by envtest).
func running(pid int) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z") {
		return nil
	}
	return fmt.Errorf("process %d still running", pid)
}

// manager is one manager process.
type manager struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	metrics string
	exited  chan struct{}
	exitErr error
	started time.Time
}

// managerFlags are what every scenario passes: loopback addresses are added
// by startManager.
func managerFlags(extra ...string) []string {
	var limits []string
	for _, n := range exchange.Names {
		limits = append(limits, string(n)+"=1000:1000")
	}
	return append([]string{
		"--allow-insecure-endpoints",
		// Plain-HTTP metrics on loopback: the suite reads the workqueue.
		"--metrics-secure=false",
		"--exchange-rate-limit=" + strings.Join(limits, ","),
		// The most verbose level: the leak check reads these logs.
		"--zap-log-level=10",
		"--zap-devel=false",
	}, extra...)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startManager runs the manager binary with kubeconfig and flags, logging to
// a file in the scenario's artifact directory. It does not wait for
// leadership: the caller waits for what it needs.
func startManager(t *testing.T, sc *scenario, name, kubeconfig string, flags []string) *manager {
	t.Helper()
	maddr, haddr := freeAddr(t), freeAddr(t)
	logPath := filepath.Join(sc.dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"--kubeconfig=" + kubeconfig,
		"--metrics-bind-address=" + maddr,
		"--health-probe-bind-address=" + haddr,
	}, flags...)
	cmd := exec.Command(managerBin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatal(err)
	}
	m := &manager{name: name, cmd: cmd, logPath: logPath, logFile: lf, metrics: "http://" + maddr + "/metrics", exited: make(chan struct{}), started: time.Now()}
	go func() { m.exitErr = cmd.Wait(); close(m.exited) }()
	sc.managers = append(sc.managers, m)
	return m
}

func (m *manager) alive() bool {
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// kill is SIGKILL: no cleanup, no lease release, no flush.
func (m *manager) kill() {
	if m.alive() {
		_ = m.cmd.Process.Kill()
	}
	<-m.exited
	m.logFile.Close()
}

// term is SIGTERM and waits for the process to end; it returns the exit
// error (nil for a clean exit), or an error if it did not end within 40 s
// (controller-runtime's graceful shutdown allows 30 s).
func (m *manager) term() error {
	if m.alive() {
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-m.exited:
		m.logFile.Close()
		return m.exitErr
	case <-time.After(40 * time.Second):
		m.kill()
		return errors.New("manager did not exit within 40 s of SIGTERM")
	}
}

func (m *manager) log() []byte {
	b, _ := os.ReadFile(m.logPath)
	return b
}

func (m *manager) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(string(m.log()), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitLog polls the manager's log until it contains s.
func (m *manager) waitLog(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	poll(t, timeout, func() error {
		if bytes.Contains(m.log(), []byte(s)) {
			return nil
		}
		if !m.alive() {
			return stopPolling{fmt.Errorf("manager %s exited: %v; log tail:\n%s", m.name, m.exitErr, m.logTail(20))}
		}
		return fmt.Errorf("manager %s has not logged %q; log tail:\n%s", m.name, s, m.logTail(5))
	})
}

func httpGet(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return buf.Bytes(), nil
}

// stopPolling ends poll at once with its error.
type stopPolling struct{ error }

// poll calls f every 100 ms until it returns nil, and fails the test with
// f's last error after timeout.
func poll(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	if err := pollErr(timeout, f); err != nil {
		t.Fatal(err)
	}
}

func pollErr(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		var sp stopPolling
		if errors.As(err, &sp) {
			return sp.error
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
