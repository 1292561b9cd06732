package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sterad/sterad/api"
)

// The daemon under measure runs as its own process: this very binary,
// re-executed as `sterad serve --config FILE` with a configuration the
// bench writes. Its CPU and memory are then its own (/proc/PID), and the
// bench's clients and acquirer do not count.

// daemonSpec is one daemon the bench starts.
type daemonSpec struct {
	exe        string // the sterad binary; "" for this one
	name       string // "daemon", "queued": names its files in work
	work       string // the bench's temporary directory
	dataDir    string
	kekFile    string
	acquirer   string        // host:port
	virtualTID string        // virtual_terminal_id (DE 41 of keyed sales); "" for the default
	within     time.Duration // to be up and listening
	cpuProfile string        // STERAD_CPUPROFILE of the child, if any
	memProfile string        // STERAD_MEMPROFILE of the child, if any
	clients    int           // API connections to keep
}

// daemonProc is a running daemon.
type daemonProc struct {
	cmd     *exec.Cmd
	pid     int
	c       *api.Client
	logPath string
	profile string        // where the daemon writes a CPU profile (cpuProfile of its spec), "" for none
	exited  chan struct{} // closed when the process has ended
	err     error         // its exit, once exited is closed

	mu      sync.Mutex
	changed chan struct{}  // closed and replaced at every log line
	counts  map[string]int // log messages seen, by msg
	tail    []string       // the last log lines, for errors
}

// childEnv is the bench's environment less what would change the
// daemon's configuration behind the file the bench wrote, plus extra.
func childEnv(extra ...string) []string {
	drop := map[string]bool{
		"STERAD_CONFIG": true, "STERAD_DATA_DIR": true, "STERAD_API_LISTEN": true, "STERAD_ACQUIRER_ADDRESS": true,
		"STERAD_MERCHANT_ID": true, "STERAD_KEK_FILE": true, "STERAD_LOG_LEVEL": true, "STERAD_API_TOKEN": true,
		envCPUProfile: true, envMemProfile: true, "CREDENTIALS_DIRECTORY": true,
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// startDaemonProc writes the configuration and starts the daemon, and
// returns once its API answers.
func startDaemonProc(ctx context.Context, s daemonSpec) (*daemonProc, error) {
	exe := s.exe
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("the sterad binary: %w", err)
		}
	}
	cfgPath := filepath.Join(s.work, s.name+".yaml")
	// API on a port the kernel picks: the daemon logs it when ready.
	// card_data clear: the bench keys its cards, which blind mode refuses.
	cfg := fmt.Sprintf("data_dir: %s\napi: {listen: \"127.0.0.1:0\"}\nacquirer: {address: %q}\ncard_data: clear\nkek_file: %s\nlog: {level: info, format: json}\n",
		s.dataDir, s.acquirer, s.kekFile)
	if s.virtualTID != "" {
		cfg += fmt.Sprintf("virtual_terminal_id: %q\n", s.virtualTID)
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	raw := make([]byte, 16)
	rand.Read(raw)
	token := hex.EncodeToString(raw)
	env := []string{"STERAD_API_TOKEN=" + token}
	if s.cpuProfile != "" {
		env = append(env, envCPUProfile+"="+s.cpuProfile)
	}
	if s.memProfile != "" {
		env = append(env, envMemProfile+"="+s.memProfile)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	d := &daemonProc{logPath: filepath.Join(s.work, s.name+".log"), profile: s.cpuProfile, exited: make(chan struct{}), changed: make(chan struct{}), counts: map[string]int{}}
	logf, err := os.Create(d.logPath)
	if err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	d.cmd = exec.Command(exe, "serve", "--config", cfgPath)
	d.cmd.Env = childEnv(env...)
	d.cmd.Stdout, d.cmd.Stderr = pw, pw
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives the bench
	if err := d.cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		logf.Close()
		return nil, fmt.Errorf("start %s serve: %w", exe, err)
	}
	pw.Close()
	d.pid = d.cmd.Process.Pid
	apiAddr := make(chan string, 1)
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		defer logf.Close()
		d.readLog(pr, logf, apiAddr)
	}()
	go func() {
		err := d.cmd.Wait()
		<-logDone
		d.err = err
		close(d.exited)
	}()

	timer := time.NewTimer(s.within)
	defer timer.Stop()
	select {
	case addr := <-apiAddr:
		d.c = api.NewClient(addr, token)
		d.c.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: s.clients * 2, MaxConnsPerHost: s.clients * 2}}
		return d, nil
	case <-d.exited:
		return nil, fmt.Errorf("the daemon ended before it was ready (%v):\n%s", d.err, d.lastLines())
	case <-timer.C:
		d.kill()
		return nil, fmt.Errorf("the daemon was not ready within %s:\n%s", s.within, d.lastLines())
	case <-ctx.Done():
		d.kill()
		return nil, ctx.Err()
	}
}

// watchedLogs are the daemon's log messages the bench waits for.
var watchedLogs = []string{"sterad is ready", "CPU profile started", "CPU profile written", "heap profile written"}

// readLog copies the daemon's log to its file, counts the watched
// messages and hands over the API address of "sterad is ready". It must
// keep up with the daemon (which logs a line per transaction it recovers
// at its start): only the watched lines are decoded.
func (d *daemonProc) readLog(r *os.File, w *os.File, apiAddr chan<- string) {
	defer r.Close()
	bw := bufio.NewWriterSize(w, 256<<10)
	defer bw.Flush()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	keys := make([][]byte, len(watchedLogs))
	for i, m := range watchedLogs {
		keys[i] = []byte(`"msg":"` + m + `"`)
	}
	for sc.Scan() {
		line := sc.Bytes()
		bw.Write(line)
		bw.WriteByte('\n')
		msg := ""
		for i, k := range keys {
			if bytes.Contains(line, k) {
				msg = watchedLogs[i]
			}
		}
		d.mu.Lock()
		if len(d.tail) == 20 {
			d.tail = append(d.tail[:0], d.tail[1:]...)
		}
		d.tail = append(d.tail, string(line))
		d.mu.Unlock()
		if msg == "" {
			continue
		}
		if msg == "sterad is ready" {
			var rec struct {
				API string `json:"api"`
			}
			json.Unmarshal(line, &rec)
			select {
			case apiAddr <- strings.TrimPrefix(rec.API, "http://"):
			default:
			}
		}
		d.mu.Lock()
		d.counts[msg]++
		close(d.changed)
		d.changed = make(chan struct{})
		d.mu.Unlock()
	}
}

func (d *daemonProc) lastLines() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return "  " + strings.Join(d.tail, "\n  ") + "\n  (the whole log: " + d.logPath + ", kept with --keep)"
}

// waitLog waits until the daemon has logged msg more than n times.
func (d *daemonProc) waitLog(msg string, n int, within time.Duration) error {
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		seen, changed := d.counts[msg], d.changed
		d.mu.Unlock()
		if seen > n {
			return nil
		}
		select {
		case <-changed:
		case <-d.exited:
			return fmt.Errorf("the daemon ended (%v) before it logged %q", d.err, msg)
		case <-deadline.C:
			return fmt.Errorf("the daemon did not log %q within %s", msg, within)
		}
	}
}

func (d *daemonProc) logged(msg string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.counts[msg]
}

// signalLogged sends sig and waits for the daemon to log msg once more.
func (d *daemonProc) signalLogged(sig syscall.Signal, msg string) error {
	n := d.logged(msg)
	if err := d.cmd.Process.Signal(sig); err != nil {
		return err
	}
	return d.waitLog(msg, n, time.Minute)
}

// waitOnline polls the daemon's status until the acquirer link is up.
func (d *daemonProc) waitOnline(ctx context.Context, within time.Duration) error {
	return pollUntil(ctx, within, 20*time.Millisecond, func() (bool, error) {
		st, err := d.c.Status(ctx)
		return err == nil && st.Acquirer.Online, nil
	})
}

// stop ends the daemon the way systemd does (SIGTERM: payments in flight
// finish) and waits for it; after within it is killed.
func (d *daemonProc) stop(within time.Duration) error {
	d.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case <-d.exited:
		if d.err != nil {
			return fmt.Errorf("the daemon stopped with %v:\n%s", d.err, d.lastLines())
		}
		return nil
	case <-t.C:
		d.kill()
		return fmt.Errorf("the daemon did not stop within %s: killed", within)
	}
}

func (d *daemonProc) kill() {
	d.cmd.Process.Kill()
	<-d.exited
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// cpuTimes is CPU time the daemon has used, all its threads: in its own
// code (utime of /proc/PID/stat) and in the kernel on its behalf (stime:
// its system calls — fdatasync, pwrite, the sockets — and the page
// faults of the store's memory map).
type cpuTimes struct{ user, sys time.Duration }

func (c cpuTimes) total() time.Duration { return c.user + c.sys }

func (c cpuTimes) sub(o cpuTimes) cpuTimes { return cpuTimes{c.user - o.user, c.sys - o.sys} }

func (d *daemonProc) cpu() (cpuTimes, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.pid))
	if err != nil {
		return cpuTimes{}, fmt.Errorf("daemon CPU time: %w", err)
	}
	// pid (comm) state ppid … : comm may hold spaces, the fields after
	// its closing parenthesis do not. utime and stime are fields 14, 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return cpuTimes{}, errors.New("daemon CPU time: /proc/PID/stat unreadable")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return cpuTimes{}, fmt.Errorf("daemon CPU time: %w", err)
	}
	return cpuTimes{time.Duration(ut) * time.Second / clockTicks, time.Duration(st) * time.Second / clockTicks}, nil
}

// measure runs run and returns the CPU the daemon used meanwhile. When
// the daemon profiles, the run's CPU profile is then moved to dest (the
// daemon writes every profile to the same file).
func (d *daemonProc) measure(dest string, run func()) (cpuTimes, error) {
	if d.profile != "" {
		if err := d.signalLogged(syscall.SIGUSR1, "CPU profile started"); err != nil {
			return cpuTimes{}, err
		}
	}
	cpu0, err := d.cpu()
	if err != nil {
		return cpuTimes{}, err
	}
	run()
	cpu1, err := d.cpu()
	if err != nil {
		return cpuTimes{}, err
	}
	if d.profile != "" {
		if err := d.signalLogged(syscall.SIGUSR1, "CPU profile written"); err != nil {
			return cpuTimes{}, err
		}
		if err := os.Rename(d.profile, dest); err != nil {
			return cpuTimes{}, err
		}
	}
	return cpu1.sub(cpu0), nil
}

// procMemory is the daemon's resident memory (/proc/PID/status), bytes:
// VmRSS, VmHWM (its peak), and VmRSS's anonymous part (the Go heap,
// stacks) and file-backed part (the store's memory map, the binary).
type procMemory struct{ rss, hwm, anon, file int64 }

func (d *daemonProc) memory() (procMemory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.pid))
	if err != nil {
		return procMemory{}, fmt.Errorf("daemon memory: %w", err)
	}
	var m procMemory
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			m.rss = kb << 10
		case "VmHWM":
			m.hwm = kb << 10
		case "RssAnon":
			m.anon = kb << 10
		case "RssFile":
			m.file = kb << 10
		}
	}
	if m.rss == 0 {
		return m, errors.New("daemon memory: no VmRSS in /proc/PID/status")
	}
	return m, nil
}

// metrics returns the values of the samples named (with their labels, as
// /metrics writes them), from one read of the daemon's /metrics.
func (d *daemonProc) metrics(ctx context.Context, names ...string) (map[string]float64, error) {
	var b strings.Builder
	if _, err := d.c.Do(ctx, http.MethodGet, "/metrics", nil, nil, &b); err != nil {
		return nil, err
	}
	vals := make(map[string]float64, len(names))
	for _, l := range strings.Split(b.String(), "\n") {
		name, v, ok := strings.Cut(l, " ")
		if !ok || !slices.Contains(names, name) {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return nil, fmt.Errorf("/metrics: %s: %w", name, err)
		}
		vals[name] = f
	}
	for _, name := range names {
		if _, ok := vals[name]; !ok {
			return nil, fmt.Errorf("/metrics has no %s", name)
		}
	}
	return vals, nil
}

// commits returns how many store commits the daemon has timed and their
// total time (sterad_store_commit_duration_seconds).
func (d *daemonProc) commits(ctx context.Context) (n float64, total time.Duration, err error) {
	const count, sum = "sterad_store_commit_duration_seconds_count", "sterad_store_commit_duration_seconds_sum"
	m, err := d.metrics(ctx, count, sum)
	if err != nil {
		return 0, 0, err
	}
	return m[count], time.Duration(m[sum] * float64(time.Second)), nil
}

// dirBytes is the size of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// pollUntil calls cond every `every` until it reports true, it fails, ctx
// ends or within has passed.
func pollUntil(ctx context.Context, within, every time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(within)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}
