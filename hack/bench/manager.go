package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// pprofOverlay is compiled into ./cmd with `go build -overlay` when the
// benchmark runs with --pprof: the product has no profiling endpoint (the
// controller-runtime metrics server takes extra handlers only from code), and
// the benchmark may not edit cmd/. The overlay leaves the source tree alone.
const pprofOverlay = `package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("BENCH_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
`

// buildManager builds ./cmd into out, exactly as `make build` does (without
// the version stamp), or with the pprof overlay.
func buildManager(ctx context.Context, root, out, workDir string, withPprof bool) error {
	args := []string{"build", "-o", out}
	if withPprof {
		src := filepath.Join(workDir, "zz_bench_pprof.go")
		if err := os.WriteFile(src, []byte(pprofOverlay), 0o644); err != nil {
			return err
		}
		ov, _ := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(root, "cmd", "zz_bench_pprof.go"): src}})
		ovPath := filepath.Join(workDir, "overlay.json")
		if err := os.WriteFile(ovPath, ov, 0o644); err != nil {
			return err
		}
		args = append(args, "-overlay", ovPath)
	}
	args = append(args, "./cmd")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, buf.String())
	}
	return nil
}

// manager is one manager process.
type manager struct {
	// label names the flag set in the report ("default", "tuned").
	label string
	// flags are the tuning flags; the fixed ones (kubeconfig, addresses,
	// --allow-insecure-endpoints for the plain-HTTP simulator) are added.
	flags   []string
	bin     string
	cmd     *exec.Cmd
	pid     int
	metrics string
	pprof   string
	logPath string
	logFile *os.File
	exited  chan struct{}
	started time.Time
	// auth scrapes /metrics as Prometheus does; prom is that scraper.
	auth *metricsAuth
	prom *promScraper
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startManager runs bin against the cluster and waits until its controller
// has started its workers (caches synced).
func startManager(ctx context.Context, bin, kubeconfig, logPath, label string, flags []string, withPprof bool, auth *metricsAuth) (*manager, error) {
	maddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	haddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--kubeconfig=" + kubeconfig,
		"--metrics-bind-address=" + maddr, // HTTPS with authorization, the default
		"--health-probe-bind-address=" + haddr,
		"--allow-insecure-endpoints",
	}, flags...)
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	m := &manager{label: label, flags: flags, bin: bin, metrics: "https://" + maddr + "/metrics", logPath: logPath, logFile: lf, exited: make(chan struct{}), auth: auth}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Loopback only: no proxy may see the simulator traffic.
	cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	if withPprof {
		paddr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		m.pprof = "http://" + paddr
		cmd.Env = append(cmd.Env, "BENCH_PPROF_ADDR="+paddr)
	}
	// The manager must not outlive the benchmark, however it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	m.cmd, m.pid, m.started = cmd, cmd.Process.Pid, time.Now()
	go func() { _ = cmd.Wait(); close(m.exited) }()

	deadline := time.Now().Add(90 * time.Second)
	for {
		if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte("Starting workers")) {
			if _, err := m.scrape(ctx); err == nil {
				m.startPromScraper(ctx)
				return m, nil
			}
		}
		select {
		case <-m.exited:
			return nil, fmt.Errorf("manager exited during start; log %s:\n%s", logPath, m.logTail(20))
		case <-ctx.Done():
			m.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.stop()
			return nil, fmt.Errorf("manager did not start its workers within 90s; log %s:\n%s", logPath, m.logTail(20))
		}
	}
}

func (m *manager) commandLine() string {
	return "bin/manager --allow-insecure-endpoints " + strings.Join(m.flags, " ")
}

// stop ends the process: SIGTERM, then SIGKILL after 15 s.
func (m *manager) stop() {
	if m == nil || m.cmd == nil {
		return
	}
	m.prom.stop()
	select {
	case <-m.exited:
	default:
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
		case <-time.After(15 * time.Second):
			_ = m.cmd.Process.Kill()
			<-m.exited
		}
	}
	m.logFile.Close()
}

func (m *manager) alive() bool {
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

func (m *manager) logTail(n int) string {
	b, _ := os.ReadFile(m.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// countLog counts log lines containing s (e.g. reconcile errors).
func (m *manager) countLog(s string) int {
	b, _ := os.ReadFile(m.logPath)
	return bytes.Count(b, []byte(s))
}

func httpGet(ctx context.Context, url string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
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
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, nil
}

func (m *manager) scrape(ctx context.Context) ([]sample, error) {
	b, err := m.auth.get(ctx, m.metrics, 20*time.Second)
	if err != nil {
		return nil, err
	}
	return parseProm(b), nil
}

// mgrStats are the manager's own counters at one moment.
type mgrStats struct {
	reconciles     float64
	reconcileErrs  float64
	queueDepth     float64
	activeWorkers  float64
	clientWrites   float64 // rest_client_requests_total, mutating methods
	clientRequests float64
	heapInuse      float64
	rssMetric      float64
	goroutines     float64
}

func (m *manager) stats(ctx context.Context) (mgrStats, error) {
	ss, err := m.scrape(ctx)
	if err != nil {
		return mgrStats{}, err
	}
	ctl := func(l map[string]string) bool { return l["controller"] == "exchangeapikey" }
	write := func(l map[string]string) bool { return writeVerbs[strings.ToUpper(l["method"])] }
	return mgrStats{
		reconciles:     sumProm(ss, "controller_runtime_reconcile_total", ctl),
		reconcileErrs:  sumProm(ss, "controller_runtime_reconcile_errors_total", ctl),
		queueDepth:     sumProm(ss, "workqueue_depth", func(l map[string]string) bool { return l["name"] == "exchangeapikey" }),
		activeWorkers:  sumProm(ss, "controller_runtime_active_workers", ctl),
		clientWrites:   sumProm(ss, "rest_client_requests_total", write),
		clientRequests: sumProm(ss, "rest_client_requests_total", nil),
		heapInuse:      sumProm(ss, "go_memstats_heap_inuse_bytes", nil),
		rssMetric:      sumProm(ss, "process_resident_memory_bytes", nil),
		goroutines:     sumProm(ss, "go_goroutines", nil),
	}, nil
}

// waitIdle waits until the controller has reconciled at least minReconciles
// times in total and its queue has been empty with no active worker for
// quiet (items waiting for a RequeueAfter do not count as queued).
func (m *manager) waitIdle(ctx context.Context, minReconciles float64, quiet, timeout time.Duration) (mgrStats, error) {
	deadline := time.Now().Add(timeout)
	var idleSince time.Time
	var last float64 = -1
	for {
		st, err := m.stats(ctx)
		if err == nil {
			busy := st.queueDepth > 0 || st.activeWorkers > 0 || st.reconciles < minReconciles || st.reconciles != last
			last = st.reconciles
			switch {
			case busy:
				idleSince = time.Time{}
			case idleSince.IsZero():
				idleSince = time.Now()
			case time.Since(idleSince) >= quiet:
				return st, nil
			}
		}
		if !m.alive() {
			return st, fmt.Errorf("manager exited; log tail:\n%s", m.logTail(20))
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("manager not idle after %s (reconciles %.0f, want >= %.0f, queue %.0f)", timeout, st.reconciles, minReconciles, st.queueDepth)
		}
		// Not faster: every scrape renders every key's series (and passes
		// the authorization filter), which would load the process being
		// measured (Prometheus scrapes every 15-60 s).
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// scrapeCost times one GET /metrics and reports its size, as Prometheus
// would see it.
func (m *manager) scrapeCost(ctx context.Context) (time.Duration, int, error) {
	t := time.Now()
	b, err := m.auth.get(ctx, m.metrics, 30*time.Second)
	return time.Since(t), len(b), err
}

// resetPeak restarts the process's peak resident set (VmHWM) from its
// current one (Linux clear_refs 5), so that a phase reads its own peak.
func (m *manager) resetPeak() {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", m.pid), []byte("5"), 0)
}

// memory is the process's peak and current resident set, in MiB.
func (m *manager) memory() (hwm, rss float64) {
	return float64(procStatusKB(m.pid, "VmHWM")) / 1024, float64(procStatusKB(m.pid, "VmRSS")) / 1024
}

// profiler collects back-to-back 5 s CPU profiles from a --pprof manager
// while a phase runs; merged afterwards with `go tool pprof -proto`.
type profiler struct {
	cancel context.CancelFunc
	done   chan struct{}
	files  []string
}

func (m *manager) startCPUProfile(ctx context.Context, dir, name string) *profiler {
	if m.pprof == "" {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &profiler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; ctx.Err() == nil; i++ {
			b, err := httpGet(ctx, m.pprof+"/debug/pprof/profile?seconds=5", 30*time.Second)
			if err != nil {
				return
			}
			f := filepath.Join(dir, fmt.Sprintf("%s.cpu.%03d.pb.gz", name, i))
			if os.WriteFile(f, b, 0o644) == nil {
				p.files = append(p.files, f)
			}
		}
	}()
	return p
}

// stop ends collection (the profile in flight is dropped) and merges what
// was collected into dir/name.cpu.pb.gz; it returns that path.
func (p *profiler) stop(ctx context.Context, dir, name string) (string, error) {
	if p == nil {
		return "", nil
	}
	p.cancel()
	<-p.done
	if len(p.files) == 0 {
		return "", errors.New("no CPU profile collected (phase shorter than 5 s?)")
	}
	out := filepath.Join(dir, name+".cpu.pb.gz")
	cmd := exec.CommandContext(ctx, "go", append([]string{"tool", "pprof", "-proto"}, p.files...)...)
	f, err := os.Create(out)
	if err != nil {
		return "", err
	}
	defer f.Close()
	cmd.Stdout = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("merging profiles: %v: %s", err, stderr.String())
	}
	for _, x := range p.files {
		_ = os.Remove(x)
	}
	return out, nil
}

// saveProfile fetches one pprof endpoint (heap, goroutine) into a file.
func (m *manager) saveProfile(ctx context.Context, path, file string) error {
	if m.pprof == "" {
		return nil
	}
	b, err := httpGet(ctx, m.pprof+path, 60*time.Second)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}
