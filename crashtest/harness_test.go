//go:build linux

package crashtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/simulator/acquirer"
	"github.com/sterad/sterad/simulator/terminal"
)

// Timeouts of the harness: generous, since `make test` runs every package
// at once (and under -race).
const (
	startTimeout  = 30 * time.Second // a child answers its health check
	onlineTimeout = 30 * time.Second // the daemon's acquirer link is online
	killTimeout   = 10 * time.Second // a killed child is reaped
	pollEvery     = 20 * time.Millisecond
)

const (
	merchantID = "HOTEL0000000001"
	virtualTID = "VIRT0001"
	deskTID    = "FRONT001" // the first desk terminal
	apiToken   = "crashtest-token"
)

// deskTIDs are the front desk's terminals: two, so that card-present
// sales (every debit in card_data: blind) run at two terminals at once,
// each with its own STANs and batch totals.
var deskTIDs = []string{deskTID, "FRONT002"}

// simTerminal is a terminal simulator the harness runs.
type simTerminal struct {
	id, ctl, log string
	child        *child
}

// child is a process the harness started.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when it exited
	err  error         // its exit, once done is closed
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// harness runs the acquirer, the terminals and the daemon as children of
// the test, in one work directory.
type harness struct {
	t        testing.TB
	bin      string
	dir      string
	cardData string // the daemon's card_data

	acqAddr, acqCtl, apiAddr string
	acqLog, daemonLog        string
	chaosLog                 *os.File
	start                    time.Time

	acq   *child
	terms []*simTerminal

	mu     sync.Mutex
	daemon *child
	starts int // daemon incarnations

	api  *api.Client
	ctl  *http.Client // control APIs of the simulators
	down atomic.Bool  // the daemon is (being) killed: clients expect errors
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// newHarness starts the acquirer and the terminal, writes the daemon's
// configuration and starts the daemon. dir is kept on failure (or with
// -crash.keep) and its path printed.
//
// cardData is the daemon's card_data: blind (the terminal encrypts, no card
// is keyed) or clear (the keyed workload and the negative control).
func newHarness(t testing.TB, bin, name, cardData string) *harness {
	t.Helper()
	dir, err := os.MkdirTemp("", "sterad-crashtest-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t: t, bin: bin, dir: dir, start: time.Now(), cardData: cardData,
		acqAddr: freeAddr(t), acqCtl: freeAddr(t), apiAddr: freeAddr(t),
		acqLog: filepath.Join(dir, "acquirer.log"), daemonLog: filepath.Join(dir, "daemon.log"),
		ctl: &http.Client{Timeout: 10 * time.Second},
	}
	for _, id := range deskTIDs {
		h.terms = append(h.terms, &simTerminal{id: id, ctl: freeAddr(t), log: filepath.Join(dir, "terminal-"+id+".log")})
	}
	h.api = api.NewClient(h.apiAddr, apiToken)
	h.api.HTTP = &http.Client{Timeout: 2 * time.Minute}
	if h.chaosLog, err = os.Create(filepath.Join(dir, "chaos.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.stopAll()
		h.chaosLog.Close()
		if t.Failed() || *flagKeep {
			t.Logf("work directory kept: %s\n  acquirer log %s\n  terminal logs %s\n  daemon log   %s\n  chaos log    %s\n  daemon data  %s\n  host ledger  %s",
				dir, h.acqLog, filepath.Join(dir, "terminal-*.log"), h.daemonLog, h.chaosLog.Name(), filepath.Join(dir, "data"), filepath.Join(dir, "acquirer"))
			return
		}
		os.RemoveAll(dir)
	})

	h.acq = h.spawn("acquirer", h.acqLog, nil, "sim", "acquirer", "--listen", h.acqAddr, "--control", h.acqCtl, "--data", filepath.Join(dir, "acquirer"))
	for _, st := range h.terms {
		st.child = h.spawn("terminal "+st.id, st.log, nil, "sim", "terminal", "--kind", "fixed", "--id", st.id,
			"--link", filepath.Join(dir, st.id+".tty"), "--control", st.ctl, "--present", "50ms")
	}
	h.waitHealthy(h.acq, "http://"+h.acqCtl+"/healthz")
	for _, st := range h.terms {
		h.waitHealthy(st.child, "http://"+st.ctl+"/healthz")
	}
	h.writeConfig()
	h.startDaemon()
	return h
}

// writeConfig writes the daemon's YAML. The nightly cut-off is put twelve
// hours away so that no batch closes during the run; the stand-in limits
// are high so that stand-in (when the daemon has it) covers every amount
// the clients send.
func (h *harness) writeConfig() {
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		h.t.Fatal(err)
	}
	cutoff := time.Now().In(loc).Add(12 * time.Hour).Format("15:04")
	var terms strings.Builder
	for _, st := range h.terms {
		fmt.Fprintf(&terms, "  - {id: %s, kind: fixed, port: %s}\n", st.id, filepath.Join(h.dir, st.id+".tty"))
	}
	cfg := fmt.Sprintf(`merchant_id: %s
virtual_terminal_id: %s
data_dir: %s
api: {listen: "%s"}
acquirer: {address: "%s", timeout: 1s}
terminals:
%soffline: {floor_limit: "5000000", total_limit: "1000000000", max_count: 100000, max_age: 48h}
settlement: {cutoff: "%s", timezone: Asia/Tokyo}
log: {level: info, format: text}
kek_file: %s
card_data: %s
`, merchantID, virtualTID, filepath.Join(h.dir, "data"), h.apiAddr, h.acqAddr, terms.String(), cutoff, h.kekFile(), h.cardData)
	if err := os.WriteFile(filepath.Join(h.dir, "sterad.yaml"), []byte(cfg), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// kekFile creates the daemon's key-encryption key (32 random bytes, 0400,
// outside its data directory) once, and returns its path.
func (h *harness) kekFile() string {
	path := filepath.Join(h.dir, "kek")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(path, key, 0o400); err != nil {
		h.t.Fatal(err)
	}
	return path
}

// spawn starts the binary with args; its stdout and stderr are appended
// to logPath. It dies with the test process (Pdeathsig).
func (h *harness) spawn(name, logPath string, env []string, args ...string) *child {
	h.t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.Command(h.bin, args...)
	cmd.Dir = h.dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		h.t.Fatalf("start %s: %v", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return c
}

// waitHealthy polls url until it answers 200; it fails the test if the
// child exits first or the deadline passes.
func (h *harness) waitHealthy(c *child, url string) {
	h.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		if c.exited() {
			h.t.Fatalf("%s exited during start-up (%v): see its log in %s", c.name, c.err, h.dir)
		}
		resp, err := h.ctl.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s did not become healthy at %s within %s: see its log in %s", c.name, url, startTimeout, h.dir)
		}
		time.Sleep(pollEvery)
	}
}

// startDaemon starts a daemon incarnation and waits for /healthz (the API
// listens only once recovery is done).
func (h *harness) startDaemon() {
	h.t.Helper()
	h.mu.Lock()
	h.starts++
	n := h.starts
	h.mu.Unlock()
	h.note("daemon start #%d", n)
	if f, err := os.OpenFile(h.daemonLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		fmt.Fprintf(f, "===== crashtest: daemon start #%d at +%s =====\n", n, time.Since(h.start).Round(time.Millisecond))
		f.Close()
	}
	c := h.spawn("daemon", h.daemonLog, []string{"STERAD_API_TOKEN=" + apiToken}, "serve", "--config", filepath.Join(h.dir, "sterad.yaml"))
	h.mu.Lock()
	h.daemon = c
	h.mu.Unlock()
	h.waitHealthy(c, "http://"+h.apiAddr+"/healthz")
	h.down.Store(false)
}

// killDaemon kills the daemon with SIGKILL and waits until it is reaped.
func (h *harness) killDaemon() {
	h.t.Helper()
	h.mu.Lock()
	c := h.daemon
	h.mu.Unlock()
	h.down.Store(true)
	if c == nil || c.exited() {
		if c != nil {
			h.t.Errorf("the daemon had exited on its own (%v): see %s", c.err, h.daemonLog)
		}
		return
	}
	h.note("SIGKILL daemon")
	c.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(killTimeout):
		h.t.Fatalf("the daemon did not die within %s of SIGKILL", killTimeout)
	}
}

// restartDaemon kills the daemon and starts it again.
func (h *harness) restartDaemon() {
	h.t.Helper()
	h.killDaemon()
	h.startDaemon()
}

// waitOnline waits until the daemon's acquirer link is online.
func (h *harness) waitOnline() {
	h.t.Helper()
	h.waitFor("the daemon's acquirer link online", onlineTimeout, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := h.api.Status(ctx)
		return err == nil && st.Acquirer.Online
	})
}

// waitTerminalReady waits until the daemon sees every terminal connected
// (ready, or busy with a transaction it is reconciling).
func (h *harness) waitTerminalReady(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ts, err := h.api.Terminals(ctx)
		cancel()
		connected := 0
		for _, x := range ts {
			if x.State != "offline" {
				connected++
			}
		}
		if err == nil && connected == len(h.terms) {
			return true
		}
		time.Sleep(pollEvery)
	}
	return false
}

// waitFor polls cond until it holds; the test fails at the deadline.
func (h *harness) waitFor(what string, timeout time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(pollEvery)
	}
}

// stopAll kills every child still running.
func (h *harness) stopAll() {
	h.mu.Lock()
	cs := []*child{h.daemon, h.acq}
	for _, st := range h.terms {
		cs = append(cs, st.child)
	}
	h.mu.Unlock()
	for _, c := range cs {
		if c != nil && !c.exited() {
			c.cmd.Process.Signal(syscall.SIGKILL)
			select {
			case <-c.done:
			case <-time.After(killTimeout):
			}
		}
	}
}

// note appends a line to the chaos log.
func (h *harness) note(format string, args ...any) {
	fmt.Fprintf(h.chaosLog, "+%-10s %s\n", time.Since(h.start).Round(time.Millisecond), fmt.Sprintf(format, args...))
}

// control posts a JSON body to a simulator's control API.
func (h *harness) control(addr, path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	resp, err := h.ctl.Post("http://"+addr+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	return nil
}

// getJSON gets a simulator's control endpoint into out.
func (h *harness) getJSON(addr, path string, out any) error {
	resp, err := h.ctl.Get("http://" + addr + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d", path, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (h *harness) setOutage(on bool) error {
	return h.control(h.acqCtl, "/outage", map[string]bool{"on": on})
}

func (h *harness) setDelay(ms int) error {
	return h.control(h.acqCtl, "/delay", map[string]int{"ms": ms})
}

func (h *harness) drop(n int) error { return h.control(h.acqCtl, "/drop", map[string]int{"count": n}) }

// unplug pulls the cable of terminal i (an index of deskTIDs) for ms.
func (h *harness) unplug(i, ms int) error {
	return h.control(h.terms[i].ctl, "/fault", map[string]any{"kind": "unplug", "count": 1, "ms": ms})
}

// pushCard queues a card at terminal i. terminal.Card masks its PAN when
// marshalled, so the body is built here.
func (h *harness) pushCard(i int, c terminal.Card) error {
	return h.control(h.terms[i].ctl, "/card", map[string]any{"pan": c.PAN.Reveal(), "expiry": c.Expiry, "entry": c.Entry, "action": c.Action})
}

func (h *harness) terminalState(i int) (terminal.State, error) {
	var st terminal.State
	err := h.getJSON(h.terms[i].ctl, "/state", &st)
	return st, err
}

func (h *harness) ledger() (acquirer.Ledger, error) {
	var l acquirer.Ledger
	err := h.getJSON(h.acqCtl, "/ledger", &l)
	return l, err
}

// startClose asks the daemon to close the open batch, without waiting.
func (h *harness) startClose() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := h.api.StartClose(ctx)
	return err
}

// clearFaults ends every acquirer fault.
func (h *harness) clearFaults() {
	h.t.Helper()
	for _, err := range []error{h.setOutage(false), h.setDelay(0), h.drop(0)} {
		if err != nil {
			h.t.Fatalf("clear acquirer faults: %v", err)
		}
	}
}
