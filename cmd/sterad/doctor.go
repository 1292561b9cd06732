package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/offline"
	"github.com/sterad/sterad/protocol"
)

// Results of a doctor's check.
const (
	checkOK   = "OK"
	checkWarn = "WARN"
	checkFail = "FAIL"
	checkSkip = "SKIP" // could not be checked here: not a problem in itself
)

// checkResult is one line of `sterad doctor`.
type checkResult struct {
	Check   string `json:"check"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// doctor runs the checks of `sterad doctor`.
type doctor struct {
	g       *globalOptions
	cfg     Config
	path    string
	timeout time.Duration
	results []checkResult

	daemon       bool        // the daemon answers /healthz on api.listen
	health       *api.Health // its answer
	status       *api.Status // GET /v1/status, when the token is at hand
	statusErr    error
	keks         []*offline.KEK
	storeOK      bool // the store exists and its key files open with the KEK
	storeMissing bool
}

// Seams of the doctor's checks that depend on the machine.
var (
	// clockSynchronized reports whether the system clock is synchronised
	// (NTP) and how that was found; an error: cannot tell.
	clockSynchronized = systemClockSynchronized
	// freeSpace returns the free bytes of dir's file system.
	freeSpace = statfsFree
	// syncLatency times durable writes in dir (offline.SyncLatency).
	syncLatency = offline.SyncLatency
)

func (d *doctor) add(check, status, msg, fix string) {
	d.results = append(d.results, checkResult{Check: check, Status: status, Message: msg, Fix: fix})
}

func newDoctorCommand(g *globalOptions) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the configuration, permissions, key, ports, acquirer, terminals, clock and disk",
		Long: `Check what sterad needs, and say what to fix: the configuration (every
problem at once), the permissions of the data directory (0700, owned by
the user that runs sterad), the API token (0600) and the key-encryption key
(0400, outside the data directory), the store's key files, the API's
listen address, the acquirer (TLS handshake and sign-on), each terminal's
HELLO, the clock's synchronisation and the free disk space.

While the daemon runs (it answers on api.listen), the store, the acquirer
link and the terminals are the daemon's: doctor asks it (GET /healthz and
/v1/status) instead of opening them itself. Each check prints OK, WARN,
FAIL or SKIP (cannot be checked here). Exits 0 when every check is OK or
skipped, 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d := &doctor{g: g, timeout: timeout, path: g.configPath}
			d.run(cmd.Context())
			out := cmd.OutOrStdout()
			ok := true
			for _, r := range d.results {
				if r.Status == checkWarn || r.Status == checkFail {
					ok = false
				}
			}
			if g.json {
				if err := printJSON(out, map[string]any{"ok": ok, "checks": d.results}); err != nil {
					return err
				}
			} else {
				printDoctor(out, d.path, d.results)
			}
			if !ok {
				return &exitError{code: ExitFailure}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the acquirer, each terminal and the daemon")
	return cmd
}

func printDoctor(w io.Writer, path string, results []checkResult) {
	if path == "" {
		path = "(no --config: the defaults)"
	}
	fmt.Fprintf(w, "sterad doctor: %s\n", path)
	bad := 0
	for _, r := range results {
		fmt.Fprintf(w, "%-4s  %-13s %s\n", r.Status, r.Check, r.Message)
		if r.Fix != "" {
			fmt.Fprintf(w, "      %-13s fix: %s\n", "", r.Fix)
		}
		if r.Status == checkWarn || r.Status == checkFail {
			bad++
		}
	}
	if bad == 0 {
		fmt.Fprintln(w, "all checks passed")
	} else {
		fmt.Fprintf(w, "%d check(s) need attention\n", bad)
	}
}

func (d *doctor) run(ctx context.Context) {
	if !d.checkConfig() {
		return
	}
	d.probeDaemon(ctx)
	d.checkPermissions()
	d.checkKey()
	d.checkPort()
	d.checkAcquirer(ctx)
	d.checkTerminals(ctx)
	d.checkClock()
	d.checkDisk()
	d.checkDiskSync(ctx)
}

// checkConfig loads and validates the configuration: every problem, then
// the warnings. It reports whether the other checks can go on.
func (d *doctor) checkConfig() bool {
	cfg, err := d.g.config()
	var ce *ConfigError
	switch {
	case errors.As(err, &ce):
		for _, p := range ce.Problems {
			d.add("configuration", checkFail, p, "")
		}
		if len(ce.Problems) == 1 && !strings.HasPrefix(ce.Problems[0], "line") {
			return false // not YAML: nothing to go on with
		}
	case err != nil:
		d.add("configuration", checkFail, err.Error(), "give the configuration file with --config (sterad init writes one)")
		return false
	default:
		problems := validationProblems(cfg.Validate())
		for _, p := range problems {
			d.add("configuration", checkFail, p, "")
		}
		if len(problems) == 0 {
			where := d.path
			if where == "" {
				where = "the defaults (no --config)"
			}
			d.add("configuration", checkOK, where+" is valid", "")
		}
	}
	for _, w := range cfg.Warnings(false) {
		d.add("configuration", checkWarn, w, "")
	}
	d.cfg = cfg
	return true
}

// probeDaemon asks GET /healthz on api.listen: is the daemon running?
func (d *doctor) probeDaemon(ctx context.Context) {
	addr := d.cfg.API.Listen
	if d.g.apiAddr != "" {
		addr = d.g.apiAddr
	}
	scheme := "http"
	if d.cfg.API.TLSCert != "" {
		scheme = "https"
	}
	hc := &http.Client{Timeout: d.timeout, Transport: &http.Transport{
		// Only to see whether sterad answers: nothing secret is sent.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+"/healthz", nil)
	if err != nil {
		return
	}
	resp, err := hc.Do(req)
	if err != nil {
		d.add("daemon", checkOK, "not running: the store, the acquirer and the terminals are checked directly", "")
		return
	}
	defer resp.Body.Close()
	var h api.Health
	if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&h) != nil || h.Status == "" {
		d.add("daemon", checkFail, fmt.Sprintf("%s answers, but not as sterad (HTTP %d)", addr, resp.StatusCode), "another program holds api.listen: stop it or choose another address")
		return
	}
	d.daemon, d.health = true, &h
	switch h.Status {
	case api.HealthOK:
		d.add("daemon", checkOK, "running on "+addr+", healthy", "")
	default:
		st := checkWarn
		if h.Status == api.HealthFailing {
			st = checkFail
		}
		for _, p := range h.Problems {
			d.add("daemon", st, fmt.Sprintf("running on %s, %s: %s: %s", addr, h.Status, p.Check, p.Message), "")
		}
	}
	c, err := d.g.client()
	if err != nil {
		d.statusErr = err
		return
	}
	c.HTTP.Timeout = d.timeout
	d.status, d.statusErr = c.Status(ctx)
}

// checkPermissions: data_dir 0700 and owned by this user, api.token 0600,
// the KEK 0400 and outside data_dir.
func (d *doctor) checkPermissions() {
	dir := d.cfg.DataDir
	uid := os.Getuid()
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.add("permissions", checkWarn, fmt.Sprintf("data_dir %s does not exist yet", dir),
			fmt.Sprintf("the daemon creates it (0700) at its first start; or: install -d -m 0700 -o sterad %s", dir))
	case err != nil:
		d.add("permissions", checkFail, fmt.Sprintf("data_dir %s: %v", dir, err), "run doctor as the user that runs sterad")
	case !fi.IsDir():
		d.add("permissions", checkFail, fmt.Sprintf("data_dir %s is not a directory", dir), "")
	default:
		owner := int(fi.Sys().(*syscall.Stat_t).Uid)
		perm := fi.Mode().Perm()
		switch {
		case perm != 0o700:
			d.add("permissions", checkFail, fmt.Sprintf("data_dir %s has mode %04o: others may read the journal", dir, perm), "chmod 0700 "+dir)
		case owner != uid && uid != 0:
			d.add("permissions", checkFail, fmt.Sprintf("data_dir %s is owned by uid %d, not by this user (uid %d)", dir, owner, uid),
				fmt.Sprintf("chown -R %d %s, or run sterad (and doctor) as its owner", uid, dir))
		case owner != uid:
			d.add("permissions", checkOK, fmt.Sprintf("data_dir %s is 0700, owned by uid %d (the service's user)", dir, owner), "")
		default:
			d.add("permissions", checkOK, fmt.Sprintf("data_dir %s is 0700 and yours", dir), "")
		}
	}
	tok := filepath.Join(dir, "api.token")
	if fi, err := os.Lstat(tok); err == nil {
		switch {
		case !fi.Mode().IsRegular():
			d.add("permissions", checkFail, tok+" is not a regular file", "remove it: the daemon makes a new token at its next start")
		case fi.Mode().Perm()&0o077 != 0:
			d.add("permissions", checkFail, fmt.Sprintf("%s has mode %04o: other users may read the API token", tok, fi.Mode().Perm()),
				"chmod 0600 "+tok+", then remove it and restart sterad to get a new token (it may have been read)")
		default:
			d.add("permissions", checkOK, tok+" is "+fmt.Sprintf("%04o", fi.Mode().Perm()), "")
		}
	}
	kek, source := kekPath(d.cfg, false)
	fi, err = os.Stat(kek)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.add("permissions", checkFail, fmt.Sprintf("no key-encryption key at %s (%s)", kek, source), "sterad keys init --kek-file "+kek)
	case err != nil:
		d.add("permissions", checkFail, fmt.Sprintf("key-encryption key %s: %v", kek, err), "run doctor as the user that runs sterad")
	case inside(kek, dir):
		d.add("permissions", checkFail, fmt.Sprintf("the key-encryption key %s is inside data_dir: a copy of the directory would carry the key to its own store", kek),
			"move it outside data_dir (e.g. /etc/sterad/kek) and set kek_file")
	case fi.Mode().Perm() == 0o400:
		d.add("permissions", checkOK, fmt.Sprintf("key-encryption key %s is 0400, outside data_dir", kek), "")
	case fi.Mode().Perm()&0o077 != 0:
		d.add("permissions", checkFail, fmt.Sprintf("key-encryption key %s has mode %04o: other users may read it", kek, fi.Mode().Perm()), "chmod 0400 "+kek)
	default:
		d.add("permissions", checkWarn, fmt.Sprintf("key-encryption key %s has mode %04o", kek, fi.Mode().Perm()), "chmod 0400 "+kek+" (nothing needs to write it)")
	}
}

// inside reports whether path is dir or under it.
func inside(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	dd, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(dd, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// checkKey loads the KEK and, with the daemon stopped, checks that it
// opens the store's key files (store check, read-only).
func (d *doctor) checkKey() {
	path, _ := kekPath(d.cfg, false)
	keks, err := loadKEKsAt(path, d.cfg.DataDir)
	if err != nil {
		d.add("key", checkFail, err.Error(), "")
		return
	}
	d.keks = keks
	if d.daemon {
		if d.health != nil && d.health.Status != api.HealthFailing {
			d.add("key", checkOK, fmt.Sprintf("key-encryption key %s loads; the running daemon has the store open", keks[0].ID()), "")
		}
		return
	}
	if !exists(filepath.Join(d.cfg.DataDir, "sterad.db")) {
		d.storeMissing = true
		d.add("key", checkOK, fmt.Sprintf("key-encryption key %s loads; no store yet (the daemon creates it under this key)", keks[0].ID()), "")
		return
	}
	res, err := offline.Check(d.cfg.DataDir, keks...)
	if err != nil {
		d.add("key", checkFail, "store: "+err.Error(), "")
		return
	}
	for _, p := range res.Problems {
		d.add("key", checkFail, "store: "+p, "restore the store from a backup (sterad restore)")
	}
	for _, o := range res.LostKeys {
		d.add("key", checkFail, "lost card key: "+o, "restore the store from a backup (sterad restore)")
	}
	if len(res.Problems) == 0 && len(res.LostKeys) == 0 {
		d.storeOK = true
		d.add("key", checkOK, fmt.Sprintf("key-encryption key %s opens the store's keys (%d transactions, %d kept cards)", keks[0].ID(), res.Txns, res.Cards), "")
	}
}

// checkPort: api.listen is free, or the daemon's.
func (d *doctor) checkPort() {
	addr := d.cfg.API.Listen
	if d.daemon {
		d.add("port", checkOK, addr+" is the daemon's", "")
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		d.add("port", checkFail, fmt.Sprintf("cannot listen on api.listen %s: %v", addr, err),
			"another program uses it (ss -ltnp sport = :PORT shows which): stop it, or change api.listen")
		return
	}
	ln.Close()
	d.add("port", checkOK, addr+" is free for the API", "")
}

// checkAcquirer: a TLS handshake, then (daemon stopped) one sign-on with
// a short timeout, numbered from the store's STAN counter; with the
// daemon running, its link's state.
func (d *doctor) checkAcquirer(ctx context.Context) {
	a := d.cfg.Acquirer
	dctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", a.Address)
	if err != nil {
		d.add("acquirer", checkFail, fmt.Sprintf("cannot connect to %s: %v", a.Address, err),
			"check acquirer.address, the network and the firewall (outgoing TCP to the acquirer's port)")
		return
	}
	if a.TLS {
		tc, err := tlsConfig(a)
		if err != nil {
			conn.Close()
			d.add("acquirer", checkFail, err.Error(), "")
			return
		}
		t := tls.Client(conn, tc)
		if err := t.HandshakeContext(dctx); err != nil {
			conn.Close()
			d.add("acquirer", checkFail, fmt.Sprintf("TLS handshake with %s: %v", a.Address, err),
				"check acquirer.ca_file and acquirer.server_name against the acquirer's certificate; check the clock")
			return
		}
		st := t.ConnectionState()
		d.add("acquirer", checkOK, fmt.Sprintf("TLS handshake with %s (%s, certificate for %s)", a.Address, tls.VersionName(st.Version), st.PeerCertificates[0].Subject.CommonName), "")
	} else {
		d.add("acquirer", checkOK, fmt.Sprintf("%s accepts TCP connections (plain: no TLS)", a.Address), "")
	}
	conn.Close()

	if d.daemon {
		switch {
		case d.status != nil && d.status.Acquirer.Online:
			d.add("acquirer", checkOK, fmt.Sprintf("the daemon is signed on since %s", stamp(d.status.Acquirer.Since, layoutSeconds)), "")
		case d.status != nil:
			d.add("acquirer", checkFail, fmt.Sprintf("the daemon's link is %s: %s", d.status.Acquirer.State, d.status.Acquirer.LastError), "")
		default:
			d.add("acquirer", checkSkip, fmt.Sprintf("sign-on not tried: the daemon holds the link, and its status cannot be read (%v)", d.statusErr), "pass --api-token or --data")
		}
		return
	}
	if !d.storeOK {
		why := "the store's keys do not open"
		if d.storeMissing {
			why = "no store yet"
		}
		d.add("acquirer", checkSkip, "sign-on not tried: "+why+" (its STAN counter numbers every message: a STAN must never repeat)",
			"start the daemon once (sterad serve), then run sterad doctor again")
		return
	}
	d.signOn(ctx)
}

// signOn opens the store for its STAN counter and signs on once.
func (d *doctor) signOn(ctx context.Context) {
	opts := offline.DefaultOptions()
	opts.GroupCommit, opts.KEKs = false, d.keks
	db, err := offline.Open(d.cfg.DataDir, opts)
	if err != nil {
		d.add("acquirer", checkSkip, "sign-on not tried: the store does not open: "+err.Error(), "")
		return
	}
	defer db.Close()
	a := d.cfg.Acquirer
	co := protocol.ClientOptions{
		Address: a.Address, TerminalID: d.cfg.VirtualTerminalID, MerchantID: d.cfg.MerchantID, Timeout: d.timeout,
		ConnectTimeout: d.timeout, STAN: db.NextSTAN, Location: d.cfg.Location(),
		BackoffMin: time.Hour, BackoffMax: time.Hour, // one attempt
	}
	if a.TLS {
		if co.TLS, err = tlsConfig(a); err != nil {
			d.add("acquirer", checkFail, err.Error(), "")
			return
		}
	}
	c, err := protocol.NewClient(co)
	if err != nil {
		d.add("acquirer", checkFail, err.Error(), "")
		return
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(rctx)
	}()
	defer func() { stop(); <-done }() // signs off
	statuses := c.Subscribe()
	deadline := time.NewTimer(2*d.timeout + time.Second)
	defer deadline.Stop()
	tried := false
	for {
		select {
		case st := <-statuses:
			switch {
			case st.Online:
				d.add("acquirer", checkOK, fmt.Sprintf("signed on to %s as merchant %s, terminal %s", a.Address, d.cfg.MerchantID, d.cfg.VirtualTerminalID), "")
				return
			case st.State == protocol.HostConnecting:
				tried = true
			case tried && st.LastError != "":
				d.add("acquirer", checkFail, "sign-on: "+st.LastError, "check merchant_id and virtual_terminal_id with the acquirer")
				return
			}
		case <-deadline.C:
			d.add("acquirer", checkFail, fmt.Sprintf("no sign-on within %s: %s", 2*d.timeout+time.Second, c.Status().LastError), "")
			return
		case <-ctx.Done():
			return
		}
	}
}

// checkTerminals: with the daemon running, its terminals' state; else
// one HELLO to each terminal of the configuration.
func (d *doctor) checkTerminals(ctx context.Context) {
	if len(d.cfg.Terminals) == 0 {
		d.add("terminals", checkWarn, "no terminals configured: only keyed payments are possible", "add them with sterad init --terminal, or under terminals: (sterad terminals discover lists the devices)")
		return
	}
	if d.daemon {
		if d.status == nil {
			d.add("terminals", checkSkip, fmt.Sprintf("the daemon holds the terminals, and its status cannot be read (%v)", d.statusErr), "pass --api-token or --data")
			return
		}
		for _, t := range d.status.Terminals {
			if t.State == sterad.TerminalOffline {
				d.add("terminals", checkFail, fmt.Sprintf("%s is offline: %s", t.ID, t.LastError), terminalFix(t))
			} else {
				d.add("terminals", checkOK, fmt.Sprintf("%s %s (model %s, firmware %s)", t.ID, t.State, t.Model, t.Firmware), "")
			}
		}
		return
	}
	for _, t := range d.cfg.Terminals {
		d.hello(ctx, t)
	}
}

// hello opens one terminal's link, says HELLO and waits for its answer.
func (d *doctor) hello(ctx context.Context, t TerminalConfig) {
	l, err := terminalTransport(t, t.USB != nil && t.USB.CDCACM)
	if err != nil {
		d.add("terminals", checkFail, fmt.Sprintf("%s: %v", t.ID, err), "")
		return
	}
	failed := &problemSignal{ch: make(chan struct{})}
	s := device.NewSession(device.SessionConfig{
		ID: t.ID, Kind: t.Kind, Transport: l.Transport, Path: l.Path, USB: l.USB, Open: l.Open,
		GatewayID: d.cfg.MerchantID, BootID: newBootID(), RequireP2PE: d.cfg.CardData == sterad.CardDataBlind,
		HelloTimeout: d.timeout, Backoff: []time.Duration{time.Hour}, // one attempt
		Logger: slog.New(failed),
	})
	go s.Run(ctx)
	defer s.Close()
	wctx, cancel := context.WithTimeout(ctx, 2*d.timeout)
	defer cancel()
	ready := make(chan error, 1)
	go func() { ready <- s.WaitReady(wctx) }()
	select {
	case err = <-ready:
	case <-failed.ch: // the session logs each failure (port, HELLO, wrong terminal) at warn or error
		err = errors.New("no answer")
	}
	info := s.Info()
	if err == nil {
		d.add("terminals", checkOK, fmt.Sprintf("%s answered HELLO on %s (%s, model %s, firmware %s)", t.ID, cmp(info.Path, info.USB), info.Kind, info.Model, info.Firmware), "")
		return
	}
	if info.LastError != "" {
		err = errors.New(info.LastError)
	}
	d.add("terminals", checkFail, fmt.Sprintf("%s: no HELLO answer: %v", t.ID, err), terminalFix(info))
}

// problemSignal is a slog.Handler that closes ch at the first warning
// or error: the session's way of saying the attempt failed.
type problemSignal struct {
	once sync.Once
	ch   chan struct{}
}

func (p *problemSignal) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (p *problemSignal) Handle(context.Context, slog.Record) error {
	p.once.Do(func() { close(p.ch) })
	return nil
}
func (p *problemSignal) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *problemSignal) WithGroup(string) slog.Handler      { return p }

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// terminalFix says what to look at for a terminal that does not answer.
func terminalFix(t sterad.TerminalInfo) string {
	msg := strings.ToLower(t.LastError)
	switch {
	case strings.Contains(msg, "permission"):
		return "the user that runs sterad needs the device: add it to dialout (serial) or plugdev (USB), or install the udev rule"
	case strings.Contains(msg, "no such file"), strings.Contains(msg, "not found"):
		return "the device is not there: check the cable and the port (sterad terminals discover)"
	case strings.Contains(msg, "announced"), strings.Contains(msg, "terminal_id"), strings.Contains(msg, "wrong terminal"):
		return "the terminal on this port has another ID: fix terminals[].id or the terminal's setting"
	}
	return "check that the terminal is on and cabled, and its port and speed (baud)"
}

// checkClock: is the system clock synchronised? Card networks date
// every message; a clock off by minutes gets answers refused.
func (d *doctor) checkClock() {
	synced, how, err := clockSynchronized()
	switch {
	case err != nil:
		d.add("clock", checkSkip, "cannot tell whether the clock is synchronised: "+err.Error(), "")
	case synced:
		d.add("clock", checkOK, "the system clock is synchronised ("+how+")", "")
	default:
		d.add("clock", checkWarn, "the system clock is not synchronised ("+how+")",
			"enable NTP: timedatectl set-ntp true (or chrony/systemd-timesyncd)")
	}
}

// systemClockSynchronized asks timedatectl, then the kernel (adjtimex).
func systemClockSynchronized() (bool, string, error) {
	if out, err := exec.Command("timedatectl", "show", "-p", "NTPSynchronized", "--value").Output(); err == nil {
		v := strings.TrimSpace(string(out))
		if v == "yes" || v == "no" {
			return v == "yes", "timedatectl NTPSynchronized=" + v, nil
		}
	}
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false, "", fmt.Errorf("neither timedatectl nor adjtimex answered: %w", err)
	}
	if state == unix.TIME_ERROR || tx.Status&unix.STA_UNSYNC != 0 {
		return false, "the kernel says unsynchronised (adjtimex)", nil
	}
	return true, "adjtimex", nil
}

// checkDisk: the free space of data_dir's file system.
func (d *doctor) checkDisk() {
	dir := nearestDir(d.cfg.DataDir)
	free, err := freeSpace(dir)
	if err != nil {
		d.add("disk", checkSkip, fmt.Sprintf("free space of %s: %v", dir, err), "")
		return
	}
	minMB := d.cfg.API.HealthzMinFreeMB
	if minMB == 0 {
		minMB = DefaultHealthzMinFreeMB
	}
	mb := free >> 20
	switch {
	case mb < uint64(minMB):
		d.add("disk", checkFail, fmt.Sprintf("%d MB free on %s: under %d MB, /healthz says failing and payments may soon be refused", mb, dir, minMB),
			"free space on that file system")
	case mb < 4*uint64(minMB):
		d.add("disk", checkWarn, fmt.Sprintf("%d MB free on %s", mb, dir), "free space on that file system")
	default:
		d.add("disk", checkOK, fmt.Sprintf("%d MB free on %s", mb, dir), "")
	}
}

// nearestDir is dir, or its closest ancestor that exists: where a data
// directory not made yet will be.
func nearestDir(dir string) string {
	for !exists(dir) && filepath.Dir(dir) != dir {
		dir = filepath.Dir(dir)
	}
	return dir
}

// slowSync is the p50 of one sync over which the doctor warns: a payment
// waits for four (two commits, each syncing twice).
const slowSync = 20 * time.Millisecond

// checkDiskSync times the syncs the store's commits wait for, in the data
// directory: a slow disk (an SD card, a busy network volume) shows in every
// payment.
func (d *doctor) checkDiskSync(ctx context.Context) {
	const n = 50
	dir := nearestDir(d.cfg.DataDir)
	took, err := syncLatency(ctx, dir, n, 5*time.Millisecond)
	if err != nil {
		d.add("disk", checkSkip, fmt.Sprintf("could not time a sync in %s: %v", dir, err),
			"run the doctor as the daemon's user (sudo -u sterad sterad doctor)")
		return
	}
	slices.Sort(took)
	p50, worst := took[len(took)/2], took[len(took)-1]
	msg := fmt.Sprintf("one write made durable in %s: median %s, slowest %s (%d timed); a payment waits for 4",
		dir, p50.Round(10*time.Microsecond), worst.Round(10*time.Microsecond), len(took))
	if p50 > slowSync {
		d.add("disk", checkWarn, msg+fmt.Sprintf(": about %s of disk time per payment", (4*p50).Round(time.Millisecond)),
			"put data_dir on a local SSD")
		return
	}
	d.add("disk", checkOK, msg, "")
}
