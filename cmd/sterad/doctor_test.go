package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/offline"
	"github.com/sterad/sterad/simulator/acquirer"
	"github.com/sterad/sterad/simulator/terminal"
)

// doctorRig is a stopped sterad's world: a store under its KEK, the test
// acquirer behind TLS, a simulated terminal on a pty, a free API port.
type doctorRig struct {
	t                             *testing.T
	dir, data, kek, caFile, port  string
	acquirer, api                 string
	merchant, tls, terminalConfig string
	extra                         string
}

func newDoctorRig(t *testing.T) *doctorRig {
	t.Helper()
	dir := t.TempDir()
	r := &doctorRig{t: t, dir: dir, data: filepath.Join(dir, "data"), kek: filepath.Join(dir, "kek"), merchant: "123456789012345", tls: "true"}
	if _, err := offline.CreateKEKFile(r.kek, r.data); err != nil {
		t.Fatal(err)
	}
	keks, err := loadKEKsAt(r.kek, r.data)
	if err != nil {
		t.Fatal(err)
	}
	opts := offline.DefaultOptions()
	opts.KEKs = keks
	db, err := offline.Open(r.data, opts)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := os.WriteFile(filepath.Join(r.data, "api.token"), []byte("token\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	certFile, keyFile, _ := selfSigned(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	host := acquirer.New(acquirer.Options{})
	go host.Serve(ln)
	t.Cleanup(func() { host.Close() })
	r.acquirer, r.caFile = ln.Addr().String(), certFile

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r.port = filepath.Join(dir, "FRONT001.tty")
	sim := terminal.New(terminal.Config{ID: "FRONT001", Kind: sterad.KindFixed})
	go sim.ListenPTY(ctx, r.port)
	if err := waitForPath(ctx, r.port, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	r.terminalConfig = fmt.Sprintf("[{id: FRONT001, kind: fixed, port: %q}]", r.port)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.api = l.Addr().String()
	l.Close()

	old := clockSynchronized
	clockSynchronized = func() (bool, string, error) { return true, "test", nil }
	t.Cleanup(func() { clockSynchronized = old })
	return r
}

// doctor writes the configuration and runs sterad doctor on it.
func (r *doctorRig) doctor(args ...string) (int, string) {
	r.t.Helper()
	path := filepath.Join(r.dir, "sterad.yaml")
	cfg := fmt.Sprintf(`merchant_id: %q
virtual_terminal_id: VIRT0001
data_dir: %q
kek_file: %q
api: {listen: %q, healthz_min_free_mb: 1}
acquirer: {address: %q, tls: %s, ca_file: %q}
terminals: %s
%s`, r.merchant, r.data, r.kek, r.api, r.acquirer, r.tls, r.caFile, r.terminalConfig, r.extra)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		r.t.Fatal(err)
	}
	code, out, errOut := run15(r.t, append([]string{"--config", path, "doctor", "--timeout", "3s"}, args...)...)
	return code, out + errOut
}

// lines returns the doctor's lines of one check with one status.
func lines(out, status, check string) []string {
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == status && f[1] == check {
			got = append(got, l)
		}
	}
	return got
}

func TestDoctorAllGood(t *testing.T) {
	r := newDoctorRig(t)
	code, out := r.doctor()
	if code != 0 || !strings.Contains(out, "all checks passed") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []struct{ check, text string }{
		{"configuration", "is valid"},
		{"daemon", "not running"},
		{"permissions", "is 0700 and yours"},
		{"permissions", "api.token is 0600"},
		{"permissions", "is 0400, outside data_dir"},
		{"key", "opens the store's keys"},
		{"port", r.api + " is free"},
		{"acquirer", "TLS handshake with " + r.acquirer},
		{"acquirer", "signed on to " + r.acquirer + " as merchant 123456789012345, terminal VIRT0001"},
		{"terminals", "FRONT001 answered HELLO on " + r.port},
		{"clock", "synchronised"},
		{"disk", "MB free"},
		{"disk", "a payment waits for 4"},
	} {
		found := false
		for _, l := range lines(out, checkOK, want.check) {
			found = found || strings.Contains(l, want.text)
		}
		if !found {
			t.Errorf("no OK %s %q in:\n%s", want.check, want.text, out)
		}
	}
	// --json: the same checks for a program.
	code, js := r.doctorJSON()
	var res struct {
		OK     bool
		Checks []checkResult
	}
	if code != 0 || json.Unmarshal([]byte(js), &res) != nil || !res.OK || len(res.Checks) < 10 {
		t.Fatalf("--json: exit %d\n%s", code, js)
	}
}

func (r *doctorRig) doctorJSON() (int, string) {
	r.t.Helper()
	code, out := r.doctor()
	if code != 0 {
		return code, out
	}
	path := filepath.Join(r.dir, "sterad.yaml")
	code, out, _ = run15(r.t, "--json", "--config", path, "doctor", "--timeout", "3s")
	return code, out
}

// Each thing wrong is a WARN or FAIL line that says what to fix, and the
// doctor exits 1.
func TestDoctorSaysWhatToFix(t *testing.T) {
	tests := []struct {
		name        string
		breakIt     func(r *doctorRig)
		status      string
		check, text string
		fix         string
	}{
		{"placeholder merchant", func(r *doctorRig) { r.merchant = "HOTEL0000000001" }, checkWarn, "configuration", "looks like a placeholder", ""},
		{"plain TCP", func(r *doctorRig) { r.tls = "false" }, checkWarn, "configuration", "plain TCP", ""},
		{"config errors", func(r *doctorRig) { r.extra = "offline: {max_count: many}\nsettlement: {cutoff: \"26:00\"}\n" }, checkFail, "configuration", "line 8: cannot unmarshal", ""},
		{"config errors, all at once", func(r *doctorRig) { r.extra = "offline: {max_count: many}\nsettlement: {cutoff: \"26:00\"}\n" }, checkFail, "configuration", "settlement.cutoff", ""},
		{"data_dir open", func(r *doctorRig) { os.Chmod(r.data, 0o755) }, checkFail, "permissions", "has mode 0755", "chmod 0700"},
		{"token open", func(r *doctorRig) { os.Chmod(filepath.Join(r.data, "api.token"), 0o644) }, checkFail, "permissions", "may read the API token", "chmod 0600"},
		{"KEK 0600", func(r *doctorRig) { os.Chmod(r.kek, 0o600) }, checkWarn, "permissions", "has mode 0600", "chmod 0400"},
		{"KEK missing", func(r *doctorRig) { os.Remove(r.kek) }, checkFail, "permissions", "no key-encryption key", "sterad keys init"},
		{"another KEK", func(r *doctorRig) {
			os.Remove(r.kek)
			offline.CreateKEKFile(r.kek, r.data)
		}, checkFail, "key", "", ""},
		{"port taken", func(r *doctorRig) {
			l, err := net.Listen("tcp", r.api)
			if err != nil {
				r.t.Fatal(err)
			}
			r.t.Cleanup(func() { l.Close() })
		}, checkFail, "port", "cannot listen on api.listen", "another program uses it"},
		{"acquirer gone", func(r *doctorRig) {
			l, _ := net.Listen("tcp", "127.0.0.1:0")
			r.acquirer = l.Addr().String()
			l.Close()
		}, checkFail, "acquirer", "cannot connect", "firewall"},
		{"wrong CA", func(r *doctorRig) { r.caFile, _, _ = selfSigned(r.t) }, checkFail, "acquirer", "TLS handshake", "ca_file"},
		{"no terminal there", func(r *doctorRig) { r.terminalConfig = `[{id: FRONT001, kind: fixed, port: /dev/nonexistent-tty}]` }, checkFail, "terminals", "FRONT001: no HELLO answer", "not there"},
		{"wrong terminal", func(r *doctorRig) { r.terminalConfig = fmt.Sprintf("[{id: FRONT002, kind: fixed, port: %q}]", r.port) }, checkFail, "terminals", "FRONT002", ""},
		{"no terminals", func(r *doctorRig) { r.terminalConfig = "[]" }, checkWarn, "terminals", "no terminals configured", "sterad init --terminal"},
		{"clock", func(r *doctorRig) {
			clockSynchronized = func() (bool, string, error) { return false, "test", nil }
		}, checkWarn, "clock", "not synchronised", "set-ntp"},
		{"disk nearly full", func(r *doctorRig) {
			old := freeSpace
			freeSpace = func(string) (uint64, error) { return 512 << 10, nil }
			r.t.Cleanup(func() { freeSpace = old })
		}, checkFail, "disk", "0 MB free", "free space"},
		{"slow disk", func(r *doctorRig) {
			old := syncLatency
			syncLatency = func(context.Context, string, int, time.Duration) ([]time.Duration, error) {
				return []time.Duration{30 * time.Millisecond, 30 * time.Millisecond, 90 * time.Millisecond}, nil
			}
			r.t.Cleanup(func() { syncLatency = old })
		}, checkWarn, "disk", "median 30ms, slowest 90ms (3 timed); a payment waits for 4: about 120ms", "local SSD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newDoctorRig(t)
			tt.breakIt(r)
			code, out := r.doctor()
			got := lines(out, tt.status, tt.check)
			var line string
			for _, l := range got {
				if strings.Contains(l, tt.text) {
					line = l
				}
			}
			if code != ExitFailure || line == "" {
				t.Fatalf("exit %d, no %s %s %q:\n%s", code, tt.status, tt.check, tt.text, out)
			}
			if tt.fix != "" && !hasFix(out, tt.fix) {
				t.Errorf("no fix %q:\n%s", tt.fix, out)
			}
		})
	}
}

// With the daemon running, doctor asks it about the store, the acquirer
// link and the terminals instead of opening them.
func TestDoctorAsksTheRunningDaemon(t *testing.T) {
	d := startDaemon(t)
	old := clockSynchronized
	clockSynchronized = func() (bool, string, error) { return true, "test", nil }
	t.Cleanup(func() { clockSynchronized = old })
	var terms []string
	for _, tc := range d.m.Config.Terminals {
		terms = append(terms, fmt.Sprintf("{id: %s, kind: %s, port: %q}", tc.ID, tc.Kind, tc.Port))
	}
	path := writeFile(t, fmt.Sprintf(`merchant_id: "123456789012345"
data_dir: %q
api: {listen: %q, healthz_min_free_mb: 1}
acquirer: {address: %q, tls: false}
terminals: [%s]
`, d.m.Config.DataDir, d.m.APIAddr, d.m.Config.Acquirer.Address, strings.Join(terms, ", ")))
	t.Setenv("STERAD_KEK_FILE", simulateKEKPath(d.m.Config.DataDir))
	code, out, errOut := run15(t, "--config", path, "--api-token", d.m.Token, "doctor", "--timeout", "3s")
	out += errOut
	if code != ExitFailure || len(lines(out, checkWarn, "configuration")) != 1 { // plain TCP, and only that
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []struct{ check, text string }{
		{"daemon", "running on " + d.m.APIAddr + ", healthy"},
		{"key", "the running daemon has the store open"},
		{"port", "is the daemon's"},
		{"acquirer", "the daemon is signed on since"},
		{"terminals", "FRONT001 ready"},
		{"terminals", "HAND0001 ready"},
	} {
		found := false
		for _, l := range lines(out, checkOK, want.check) {
			found = found || strings.Contains(l, want.text)
		}
		if !found {
			t.Errorf("no OK %s %q in:\n%s", want.check, want.text, out)
		}
	}
}

// hasFix reports whether a "fix:" line says fix.
func hasFix(out, fix string) bool {
	for _, l := range strings.Split(out, "\n") {
		if _, f, ok := strings.Cut(l, "fix: "); ok && strings.Contains(f, fix) {
			return true
		}
	}
	return false
}
