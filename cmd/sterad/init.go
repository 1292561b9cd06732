package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/offline"
)

// DefaultConfigFile is where `sterad init` writes and the package installs
// the configuration.
const DefaultConfigFile = "/etc/sterad/sterad.yaml"

// discoverDevices finds the serial ports and USB devices (tests replace it).
var discoverDevices = device.Discover

// initOptions are the flags of sterad init.
type initOptions struct {
	merchantID, virtualTerminalID string
	acquirer, caFile, serverName  string
	acquirerTLS                   bool
	listen, kekFile, timezone     string
	terminals                     []string
	yes, force, ask               bool
}

func newInitCommand(g *globalOptions) *cobra.Command {
	o := &initOptions{}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a configuration, find the terminals and create the key-encryption key",
		Long: `Write sterad's configuration (--config, default /etc/sterad/sterad.yaml)
from the flags, or by asking when the input is a terminal (--yes: never ask),
list the serial ports and USB devices that could be terminals, create the
key-encryption key (kek_file, default /etc/sterad/kek; an existing one is
kept), and print the next steps. An existing configuration is only
replaced with --force.

A terminal is --terminal ID,KIND,WHERE (repeat for each), KIND fixed or
handheld, WHERE a serial port (/dev/ttyS0), usb:VID:PID[:SERIAL] (a USB
handheld with a bulk interface) or acm:VID:PID[:SERIAL] (a USB handheld
that shows up as /dev/ttyACM*):

  sterad init --yes --merchant-id 123456789012345 --virtual-terminal-id VIRT0001 \
      --acquirer acq.example.jp:8583 --terminal FRONT001,fixed,/dev/ttyS0 \
      --terminal HAND0001,handheld,usb:0x1234:0x5678`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runInit(cmd, g, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.merchantID, "merchant-id", "", "merchant ID from the acquirer (DE 42, up to 15 characters)")
	f.StringVar(&o.virtualTerminalID, "virtual-terminal-id", "", "the merchant's virtual terminal ID (DE 41, up to 8 characters) for keyed and card-not-present payments")
	f.StringVar(&o.acquirer, "acquirer", "", "acquirer host:port")
	f.BoolVar(&o.acquirerTLS, "acquirer-tls", true, "connect to the acquirer with TLS (only the test acquirer takes plain TCP)")
	f.StringVar(&o.caFile, "acquirer-ca-file", "", "PEM roots for the acquirer's certificate (default: the system's)")
	f.StringVar(&o.serverName, "acquirer-server-name", "", "host name in the acquirer's certificate (default: from --acquirer)")
	f.StringArrayVar(&o.terminals, "terminal", nil, "a terminal ID,KIND,WHERE (repeat for each)")
	f.StringVar(&o.listen, "api-listen", "127.0.0.1:7583", "the API's listen address")
	f.StringVar(&o.kekFile, "kek-file", DefaultKEKFile, "the key-encryption key file (created if missing, never overwritten)")
	f.StringVar(&o.timezone, "timezone", "Asia/Tokyo", "the merchant's time zone (settlement.timezone)")
	f.BoolVarP(&o.yes, "yes", "y", false, "never ask: take everything from the flags")
	f.BoolVar(&o.force, "force", false, "replace an existing configuration file")
	f.BoolVar(&o.ask, "ask", false, "ask even when the input is not a terminal")
	f.MarkHidden("ask")
	return cmd
}

func runInit(cmd *cobra.Command, g *globalOptions, o *initOptions) error {
	out := cmd.OutOrStdout()
	path := g.configPath
	if path == "" {
		path = DefaultConfigFile
	}
	if _, err := os.Lstat(path); err == nil && !o.force {
		return usageErrorf("%s already exists: sterad init does not replace a configuration without --force (check it with `sterad doctor --config %s`)", path, path)
	}
	cfg := DefaultConfig()
	cfg.MerchantID, cfg.VirtualTerminalID = "", ""
	if g.dataDir != "" {
		cfg.DataDir = g.dataDir
	}
	cfg.API.Listen = o.listen
	cfg.Settlement.Timezone = o.timezone
	cfg.Acquirer.TLS, cfg.Acquirer.CAFile, cfg.Acquirer.ServerName = o.acquirerTLS, o.caFile, o.serverName
	cfg.Acquirer.Address = o.acquirer
	cfg.MerchantID, cfg.VirtualTerminalID = o.merchantID, o.virtualTerminalID
	cfg.KEKFile = o.kekFile
	for _, s := range o.terminals {
		t, err := parseTerminalFlag(s)
		if err != nil {
			return err
		}
		cfg.Terminals = append(cfg.Terminals, t)
	}

	found, derr := discoverDevices()
	interactive := !o.yes && (o.ask || isTerminal(cmd.InOrStdin()))
	if interactive {
		q := &asker{in: bufio.NewReader(cmd.InOrStdin()), out: out}
		if err := q.configure(&cfg, found); err != nil {
			return err
		}
	} else {
		printFoundTerminals(out, found, derr, cfg.Terminals)
	}

	if err := cfg.Validate(); err != nil {
		return &cliError{exit: ExitBadInput, code: "invalid_config", err: fmt.Errorf("the configuration would not be valid:\n%w\n(give the missing options as flags: sterad init --help)", indent(err))}
	}
	if err := writeConfigFile(path, renderConfig(cfg), o.force); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s\n", path)
	for _, w := range cfg.Warnings(false) {
		fmt.Fprintln(out, "warning:", w)
	}

	kekPath := cfg.KEKFile
	switch kek, err := offline.CreateKEKFile(kekPath, cfg.DataDir); {
	case err == nil:
		fmt.Fprintf(out, "created key-encryption key %s in %s (mode 0400): keep a copy apart from the backups of %s; without it no backup can be restored\n", kek.ID(), kekPath, cfg.DataDir)
	case errors.Is(err, fs.ErrExist):
		fmt.Fprintf(out, "kept the key-encryption key already in %s (a key is never overwritten: the store it wraps would be lost)\n", kekPath)
	default:
		return fmt.Errorf("the configuration is written, but the key-encryption key is not: %w (create it with `sterad keys init --kek-file %s`)", err, kekPath)
	}

	fmt.Fprintf(out, `
Next steps:
  1. sterad doctor --config %[1]s       check the configuration, the acquirer and the terminals
  2. systemctl enable --now sterad      start the daemon (or: sterad serve --config %[1]s)
  3. sterad status                      the acquirer link, the terminals and the open batch
`, path)
	if !cfg.Acquirer.TLS {
		fmt.Fprintln(out, "  Before going live: set acquirer.tls: true (plain TCP is for the test acquirer only).")
	}
	return nil
}

// isTerminal reports whether r is a terminal (a person can answer).
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func indent(err error) error {
	return errors.New("  " + strings.Join(validationProblems(err), "\n  "))
}

// parseTerminalFlag parses ID,KIND,WHERE.
func parseTerminalFlag(s string) (TerminalConfig, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return TerminalConfig{}, usageErrorf("--terminal %q: use ID,KIND,WHERE, e.g. FRONT001,fixed,/dev/ttyS0 or HAND0001,handheld,usb:0x1234:0x5678", s)
	}
	t := TerminalConfig{ID: strings.TrimSpace(parts[0]), Kind: strings.TrimSpace(parts[1])}
	where := strings.TrimSpace(parts[2])
	if kind, ids, ok := strings.Cut(where, ":"); ok && (kind == "usb" || kind == "acm") {
		f := strings.Split(ids, ":")
		if len(f) < 2 || len(f) > 3 {
			return t, usageErrorf("--terminal %q: write a USB device as %s:VID:PID[:SERIAL]", s, kind)
		}
		t.USB = &USBConfig{VID: f[0], PID: f[1], CDCACM: kind == "acm"}
		if len(f) == 3 {
			t.USB.Serial = f[2]
		}
		return t, nil
	}
	t.Port = where
	return t, nil
}

// printFoundTerminals lists what could be a terminal, and which of them
// the configuration uses.
func printFoundTerminals(w io.Writer, res device.DiscoveryResult, err error, terms []TerminalConfig) {
	if err != nil {
		fmt.Fprintf(w, "could not look for terminals: %v\n", err)
		return
	}
	fmt.Fprintln(w, "Devices that could be terminals (sterad terminals discover):")
	printDiscovery(w, res, terms)
	fmt.Fprintln(w)
}

// asker asks the questions of an interactive init.
type asker struct {
	in  *bufio.Reader
	out io.Writer
}

// ask asks a question with a default; an empty answer takes it.
func (q *asker) ask(question, def string) (string, error) {
	if def != "" {
		fmt.Fprintf(q.out, "%s [%s]: ", question, def)
	} else {
		fmt.Fprintf(q.out, "%s: ", question)
	}
	line, err := q.in.ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		if err == io.EOF {
			return "", usageErrorf("the input ended before every question was answered")
		}
		return "", err
	}
	if line = strings.TrimSpace(line); line == "" {
		return def, nil
	}
	return line, nil
}

func (q *asker) yesNo(question string, def bool) (bool, error) {
	d := "no"
	if def {
		d = "yes"
	}
	for {
		a, err := q.ask(question+" (yes/no)", d)
		if err != nil {
			return false, err
		}
		switch strings.ToLower(a) {
		case "y", "yes":
			return true, nil
		case "n", "no":
			return false, nil
		}
		fmt.Fprintln(q.out, "  answer yes or no")
	}
}

// configure asks for what the flags did not give, and for the terminals.
func (q *asker) configure(cfg *Config, found device.DiscoveryResult) error {
	var err error
	for _, f := range []struct {
		question string
		dst      *string
		check    func(string) string
	}{
		{"Merchant ID (from the acquirer, up to 15 characters)", &cfg.MerchantID, func(s string) string {
			if s == "" || len(s) > 15 || !ansRe.MatchString(s) {
				return "1 to 15 printable ASCII characters"
			}
			return ""
		}},
		{"Virtual terminal ID (keyed payments, up to 8 characters)", &cfg.VirtualTerminalID, func(s string) string {
			if s == "" || len(s) > 8 || !ansRe.MatchString(s) {
				return "1 to 8 printable ASCII characters"
			}
			return ""
		}},
		{"Acquirer address (host:port)", &cfg.Acquirer.Address, func(s string) string {
			if !strings.Contains(s, ":") {
				return "host:port, e.g. acq.example.jp:8583"
			}
			return ""
		}},
	} {
		for {
			if *f.dst, err = q.ask(f.question, *f.dst); err != nil {
				return err
			}
			if msg := f.check(*f.dst); msg != "" {
				fmt.Fprintln(q.out, "  "+msg)
				continue
			}
			break
		}
	}
	if cfg.Acquirer.TLS, err = q.yesNo("Connect to the acquirer with TLS", cfg.Acquirer.TLS); err != nil {
		return err
	}
	if cfg.KEKFile, err = q.ask("Key-encryption key file (outside the data directory)", cfg.KEKFile); err != nil {
		return err
	}
	if len(cfg.Terminals) > 0 {
		return nil // given as flags
	}
	// The terminals: each port or USB device found, then any other.
	fmt.Fprintln(q.out, "\nLooking for terminals (serial ports and USB devices):")
	type candidate struct {
		label, kind string
		t           TerminalConfig
	}
	var cands []candidate
	for _, p := range found.SerialPorts {
		label, kind := p.Name, sterad.KindFixed
		if p.USB {
			label += fmt.Sprintf(" (USB %s:%s %s %s)", p.VID, p.PID, p.Manufacturer, p.Product)
			kind = sterad.KindHandheld
		}
		cands = append(cands, candidate{label, kind, TerminalConfig{Port: p.Name}})
	}
	for _, d := range found.USBDevices {
		if _, _, _, ok := d.BulkInterface(0); !ok {
			continue
		}
		usb := &USBConfig{VID: d.VID.String(), PID: d.PID.String(), Serial: d.Serial}
		cands = append(cands, candidate{fmt.Sprintf("USB %s:%s %s %s (SFL/1 bulk interface)", d.VID, d.PID, d.Manufacturer, d.Product), sterad.KindHandheld, TerminalConfig{USB: usb}})
	}
	if len(cands) == 0 {
		fmt.Fprintln(q.out, "  none found")
	}
	n := 0
	next := func(kind string) string {
		n++
		if kind == sterad.KindHandheld {
			return fmt.Sprintf("HAND%04d", n)
		}
		return fmt.Sprintf("FRONT%03d", n)
	}
	for _, c := range cands {
		use, err := q.yesNo("Is "+c.label+" a card terminal", true)
		if err != nil {
			return err
		}
		if !use {
			continue
		}
		t := c.t
		if t.Kind, err = q.ask("  kind (fixed or handheld)", c.kind); err != nil {
			return err
		}
		if t.ID, err = q.ask("  its terminal ID (as set in the terminal, up to 8 characters)", next(t.Kind)); err != nil {
			return err
		}
		cfg.Terminals = append(cfg.Terminals, t)
	}
	for {
		more, err := q.ask("Another terminal as ID,KIND,WHERE (empty: done)", "")
		if err != nil || more == "" {
			return err
		}
		t, err := parseTerminalFlag(more)
		if err != nil {
			fmt.Fprintln(q.out, "  "+err.Error())
			continue
		}
		cfg.Terminals = append(cfg.Terminals, t)
	}
}

// renderConfig writes cfg as the commented YAML `sterad init` leaves:
// what was asked, with the defaults the daemon takes without them named
// in comments (docs/configuration.md has every option).
func renderConfig(c Config) []byte {
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, `# sterad configuration, written by sterad init. Every option:
# docs/configuration.md. Check it with: sterad doctor --config FILE
merchant_id: %s             # DE 42, from the acquirer
virtual_terminal_id: %s     # DE 41 of keyed and card-not-present payments
data_dir: %s                # the store, its keys and the API token (0700)
kek_file: %s                # the key-encryption key: outside data_dir, mode 0400
card_data: %s               # blind: terminals encrypt, sterad never holds a card number

api:
  listen: %s

acquirer:
  address: %s
  tls: %t
`, q(c.MerchantID), q(c.VirtualTerminalID), q(c.DataDir), q(c.KEKFile), c.CardData, q(c.API.Listen), q(c.Acquirer.Address), c.Acquirer.TLS)
	if c.Acquirer.CAFile != "" {
		fmt.Fprintf(&b, "  ca_file: %s\n", q(c.Acquirer.CAFile))
	}
	if c.Acquirer.ServerName != "" {
		fmt.Fprintf(&b, "  server_name: %s\n", q(c.Acquirer.ServerName))
	}
	fmt.Fprintf(&b, "  timeout: %s\n\nterminals:", q(c.Acquirer.Timeout.D().String()))
	if len(c.Terminals) == 0 {
		b.WriteString(" []   # add them here, or run sterad init again with --terminal (sterad terminals discover lists the devices)\n")
	} else {
		b.WriteString("\n")
	}
	for _, t := range c.Terminals {
		fmt.Fprintf(&b, "  - id: %s\n    kind: %s\n", q(t.ID), t.Kind)
		if t.Port != "" {
			fmt.Fprintf(&b, "    port: %s\n", q(t.Port))
		}
		if u := t.USB; u != nil {
			fmt.Fprintf(&b, "    usb: {vid: %s, pid: %s", q(u.VID), q(u.PID))
			if u.Serial != "" {
				fmt.Fprintf(&b, ", serial: %s", q(u.Serial))
			}
			if u.CDCACM {
				b.WriteString(", cdc_acm: true")
			}
			b.WriteString("}\n")
		}
	}
	fmt.Fprintf(&b, `
settlement:
  cutoff: %s                # the nightly batch close, merchant's time
  timezone: %s

log:
  level: info                 # debug, info, warn, error (--log-level, STERAD_LOG_LEVEL)
`, q(c.Settlement.Cutoff), q(c.Settlement.Timezone))
	return []byte(b.String())
}

// writeConfigFile writes data to path (mode 0640) through a temporary
// file, so that a half-written configuration is never left.
func writeConfigFile(path string, data []byte, force bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".sterad-init-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err = tmp.Write(data); err == nil {
		err = tmp.Chmod(0o640)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if !force {
		// Link fails if the file appeared meanwhile: never replace one.
		if err := os.Link(tmp.Name(), path); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	return os.Rename(tmp.Name(), path)
}
