package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/offline"
)

// Every problem of a configuration file comes at once: unknown keys and
// values of the wrong type with their lines, and the options' own.
func TestConfigEveryErrorAtOnce(t *testing.T) {
	path := writeFile(t, `merchant_id: "123456789012345"
merchnt: typo
offline:
  max_count: lots
  max_age: soon
acquirer:
  timeout: 15
terminals:
  - {id: FRONT001, kind: kiosk, port: /dev/ttyS0, bad: 1}
settlement: {cutoff: "25:00"}
`)
	_, err := LoadConfig(path)
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want a ConfigError, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		`line 2: unknown key "merchnt"`,
		"line 4: cannot unmarshal a string `lots` into int",
		`line 5: "soon" is not a duration`,
		`line 7: "15" is not a duration`,
		`line 9: unknown key "bad"`,
		`unknown kind "kiosk"`,
		`settlement.cutoff "25:00"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if len(ce.Problems) != 7 {
		t.Errorf("%d problems, want 7:\n%s", len(ce.Problems), msg)
	}
	// A file that is not YAML stops at its syntax error.
	if _, err := LoadConfig(writeFile(t, "merchant_id: [\n")); !errors.As(err, &ce) || len(ce.Problems) != 1 {
		t.Errorf("syntax error: %v", err)
	}
	// Exit 4 from a command, every problem on stderr.
	code, _, errOut := run15(t, "--config", path, "terminals", "discover")
	if code != ExitBadInput || !strings.Contains(errOut, "7 problems") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

// The log level: the file's, then STERAD_LOG_LEVEL, then --log-level.
func TestConfigLogLevelFlagAndEnv(t *testing.T) {
	path := writeFile(t, "log: {level: warn}\n")
	level := func(env string, args ...string) string {
		t.Helper()
		t.Setenv("STERAD_LOG_LEVEL", env)
		g := &globalOptions{}
		root := &cobra.Command{Use: "sterad"}
		g.AddFlags(root)
		if err := root.ParseFlags(append([]string{"--config", path}, args...)); err != nil {
			t.Fatal(err)
		}
		cfg, err := g.config()
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Log.Level
	}
	if l := level(""); l != "warn" {
		t.Errorf("file: %s", l)
	}
	if l := level("error"); l != "error" {
		t.Errorf("env: %s", l)
	}
	if l := level("error", "--log-level", "debug"); l != "debug" {
		t.Errorf("flag: %s", l)
	}
	cfg := DefaultConfig()
	cfg.Log.Level = "loud"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "log.level") {
		t.Errorf("a bad level: %v", err)
	}
}

func TestConfigWarnings(t *testing.T) {
	for _, tt := range []struct {
		merchant string
		tls      bool
		simulate bool
		want     []string
	}{
		{"HOTEL0000000001", false, false, []string{"placeholder", "plain TCP"}},
		{"000000000000000", true, false, []string{"placeholder"}},
		{"123456789012345", false, false, []string{"plain TCP"}},
		{"123456789012345", true, false, nil},
		{"HOTEL0000000001", false, true, nil},
	} {
		c := DefaultConfig()
		c.MerchantID, c.Acquirer.TLS = tt.merchant, tt.tls
		w := c.Warnings(tt.simulate)
		if len(w) != len(tt.want) {
			t.Errorf("%s tls=%v simulate=%v: %q", tt.merchant, tt.tls, tt.simulate, w)
			continue
		}
		for i := range w {
			if !strings.Contains(w[i], tt.want[i]) {
				t.Errorf("%s: %q, want %q", tt.merchant, w[i], tt.want[i])
			}
		}
	}
}

// fakeDiscovery makes init find one USB serial port.
func fakeDiscovery(t *testing.T) {
	t.Helper()
	old := discoverDevices
	discoverDevices = func() (device.DiscoveryResult, error) {
		return device.DiscoveryResult{SerialPorts: []device.SerialPortInfo{
			{Name: "/dev/ttyS0"},
			{Name: "/dev/ttyACM0", USB: true, VID: 0x1234, PID: 0x5678, Manufacturer: "Stera", Product: "Mobile"},
		}, USBDevices: []device.USBDeviceInfo{}}, nil
	}
	t.Cleanup(func() { discoverDevices = old })
}

func TestInitWithFlags(t *testing.T) {
	fakeDiscovery(t)
	dir := t.TempDir()
	path, kek, data := filepath.Join(dir, "etc", "sterad.yaml"), filepath.Join(dir, "etc", "kek"), filepath.Join(dir, "lib")
	args := []string{"--config", path, "--data", data, "init", "--yes", "--kek-file", kek,
		"--merchant-id", "123456789012345", "--virtual-terminal-id", "VIRT0009", "--acquirer", "acq.example.jp:8583",
		"--terminal", "FRONT001,fixed,/dev/ttyS0", "--terminal", "HAND0001,handheld,usb:0x1234:0x5678:SN1"}
	code, out, errOut := run15(t, args...)
	if code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"wrote " + path, "created key-encryption key", "Next steps", "sterad doctor --config " + path, "/dev/ttyACM0"} {
		if !strings.Contains(out, want) {
			t.Errorf("init output lacks %q:\n%s", want, out)
		}
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the written configuration is invalid: %v", err)
	}
	if cfg.MerchantID != "123456789012345" || cfg.VirtualTerminalID != "VIRT0009" || cfg.Acquirer.Address != "acq.example.jp:8583" ||
		!cfg.Acquirer.TLS || cfg.DataDir != data || cfg.KEKFile != kek || len(cfg.Terminals) != 2 ||
		cfg.Terminals[0].Port != "/dev/ttyS0" || cfg.Terminals[1].USB == nil || cfg.Terminals[1].USB.Serial != "SN1" {
		t.Fatalf("written: %+v", cfg)
	}
	if len(cfg.Warnings(false)) != 0 {
		t.Errorf("warnings: %q", cfg.Warnings(false))
	}
	fi, err := os.Stat(kek)
	if err != nil || fi.Mode().Perm() != 0o400 {
		t.Fatalf("KEK: %v %v", fi, err)
	}
	k1, err := offline.LoadKEKFile(kek, data)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)

	// Not again without --force: exit 4, nothing changed.
	code, _, errOut = run15(t, append(args[:len(args):len(args)], "--merchant-id", "999999999999999")...)
	if after, _ := os.ReadFile(path); code != ExitBadInput || !strings.Contains(errOut, "--force") || !bytes.Equal(before, after) {
		t.Fatalf("init over a configuration: exit %d %s", code, errOut)
	}
	// With --force the configuration is replaced, the KEK kept.
	code, out, errOut = run15(t, append(args[:len(args):len(args)], "--force", "--merchant-id", "999999999999999")...)
	if code != 0 || !strings.Contains(out, "kept the key-encryption key") {
		t.Fatalf("init --force: exit %d\n%s%s", code, out, errOut)
	}
	if cfg, _ := LoadConfig(path); cfg.MerchantID != "999999999999999" {
		t.Errorf("--force did not replace: %s", cfg.MerchantID)
	}
	if k2, err := offline.LoadKEKFile(kek, data); err != nil || k2.ID() != k1.ID() {
		t.Errorf("the KEK changed: %v", err)
	}
}

// Without what it needs init says all that is missing and writes nothing.
func TestInitRefusesAnIncompleteConfiguration(t *testing.T) {
	fakeDiscovery(t)
	path := filepath.Join(t.TempDir(), "sterad.yaml")
	code, _, errOut := run15(t, "--config", path, "init", "--yes", "--kek-file", filepath.Join(t.TempDir(), "kek"), "--terminal", "T1,kiosk,/dev/ttyS0")
	if code != ExitBadInput || !strings.Contains(errOut, "merchant_id") || !strings.Contains(errOut, "virtual_terminal_id") ||
		!strings.Contains(errOut, "acquirer.address") || !strings.Contains(errOut, "unknown kind") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if exists(path) {
		t.Fatal("a configuration was written")
	}
}

// Asked, init offers each device found and takes the answers.
func TestInitAsks(t *testing.T) {
	fakeDiscovery(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "sterad.yaml")
	answers := strings.Join([]string{
		"TOOLONGMERCHANTID1", "123456789012345", // a refused answer is asked again
		"VIRT0001",
		"acq.example.jp:8583",
		"", // TLS: the default, yes
		filepath.Join(dir, "kek"),
		"yes", "", "FRONT001", // /dev/ttyS0: fixed by default
		"no",                              // /dev/ttyACM0: not a terminal
		"HAND0002,handheld,acm:1234:5678", // one not found
		"",
	}, "\n") + "\n"
	var out, errw bytes.Buffer
	code := Execute(context.Background(), []string{"--config", path, "--data", filepath.Join(dir, "data"), "init", "--ask"}, strings.NewReader(answers), &out, &errw)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errw.String())
	}
	if !strings.Contains(out.String(), "1 to 15 printable ASCII characters") {
		t.Errorf("the long merchant ID was not refused:\n%s", out.String())
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MerchantID != "123456789012345" || !cfg.Acquirer.TLS || len(cfg.Terminals) != 2 ||
		cfg.Terminals[0] != (TerminalConfig{ID: "FRONT001", Kind: "fixed", Port: "/dev/ttyS0"}) ||
		cfg.Terminals[1].ID != "HAND0002" || cfg.Terminals[1].USB == nil || !cfg.Terminals[1].USB.CDCACM {
		t.Fatalf("asked: %+v", cfg)
	}
	// Input that ends early is bad input, and nothing is written.
	path2 := filepath.Join(dir, "other.yaml")
	code = Execute(context.Background(), []string{"--config", path2, "init", "--ask"}, strings.NewReader("123\n"), &out, &errw)
	if code != ExitBadInput || exists(path2) {
		t.Fatalf("early end: exit %d", code)
	}
}
