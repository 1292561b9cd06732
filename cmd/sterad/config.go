package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"gopkg.in/yaml.v3"

	"github.com/sterad/sterad"
)

// Config is sterad's YAML configuration (docs/configuration.md).
type Config struct {
	MerchantID        string            `yaml:"merchant_id"`
	VirtualTerminalID string            `yaml:"virtual_terminal_id"`
	DataDir           string            `yaml:"data_dir"`
	API               APIConfig         `yaml:"api"`
	Acquirer          AcquirerConfig    `yaml:"acquirer"`
	Terminals         []TerminalConfig  `yaml:"terminals"`
	Offline           OfflineConfig     `yaml:"offline"`
	Settlement        SettlementConfig  `yaml:"settlement"`
	Reservations      ReservationConfig `yaml:"reservations"`
	Vouchers          []VoucherConfig   `yaml:"vouchers"` // travel-voucher programs (config_reservations.go)
	Log               LogConfig         `yaml:"log"`
	Retention         RetentionConfig   `yaml:"retention"` // retention.go
	// CardData is blind (the default: terminals must encrypt, sterad never
	// holds a card number, the API refuses `card`) or clear (sterad reads
	// card numbers and seals them at rest). docs/non-retention.md.
	CardData string `yaml:"card_data"`
	// ShutdownGrace bounds how long a stop (SIGTERM) lets payments in
	// flight finish (default: acquirer.timeout + 5s).
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	KEKFile       string   `yaml:"kek_file"` // key-encryption key (keys.go); "" = $CREDENTIALS_DIRECTORY/kek, then /etc/sterad/kek
}

// APIConfig is the HTTP API.
type APIConfig struct {
	Listen    string `yaml:"listen"`
	APILimits `yaml:",inline"`
}

// AcquirerConfig is the acquirer link.
type AcquirerConfig struct {
	Address    string   `yaml:"address"`
	TLS        bool     `yaml:"tls"`
	CAFile     string   `yaml:"ca_file"`     // PEM roots for the host certificate (default: system roots)
	ServerName string   `yaml:"server_name"` // host name to verify (default: from address)
	Timeout    Duration `yaml:"timeout"`
}

// TerminalConfig is one card terminal.
type TerminalConfig struct {
	ID   string     `yaml:"id"`
	Kind string     `yaml:"kind"`
	Port string     `yaml:"port"`
	Baud int        `yaml:"baud"`
	USB  *USBConfig `yaml:"usb"`
}

// USBConfig finds a USB terminal by vendor and product id (and serial).
type USBConfig struct {
	VID    string `yaml:"vid"`
	PID    string `yaml:"pid"`
	Serial string `yaml:"serial"`
	// CDCACM: the handheld presents itself as a USB serial port
	// (/dev/ttyACM*), found by these ids on every connection attempt,
	// instead of a vendor-specific bulk interface.
	CDCACM bool `yaml:"cdc_acm"`
}

// OfflineConfig are the stand-in limits while the acquirer is unreachable.
type OfflineConfig struct {
	FloorLimit string   `yaml:"floor_limit"`
	TotalLimit string   `yaml:"total_limit"`
	MaxCount   int      `yaml:"max_count"`
	MaxAge     Duration `yaml:"max_age"`
}

// SettlementConfig is the nightly batch and the fee report.
type SettlementConfig struct {
	Cutoff   string            `yaml:"cutoff"`
	Timezone string            `yaml:"timezone"`
	FeeRates map[string]string `yaml:"fee_rates"`
	Holidays string            `yaml:"holidays"` // a newer bank-holiday calendar file
}

// LogConfig sets logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Duration is a time.Duration written as "15s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	// Errors are *yaml.TypeError: the decoder goes on and reports them
	// with every other problem of the file.
	var s string
	if err := n.Decode(&s); err != nil || n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: duration must be a string like \"15s\"", n.Line)}}
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration like \"15s\" or \"48h\"", n.Line, s)}}
	}
	*d = Duration(v)
	return nil
}

// D returns the duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// DefaultConfig is the configuration without a file: the simulator's
// merchant, the default addresses and the domain documents' fee rates.
func DefaultConfig() Config {
	return Config{
		MerchantID:        "HOTEL0000000001",
		VirtualTerminalID: "VIRT0001",
		DataDir:           "/var/lib/sterad",
		API:               APIConfig{Listen: "127.0.0.1:7583"},
		Acquirer:          AcquirerConfig{Address: "127.0.0.1:8583", Timeout: Duration(15 * time.Second)},
		Offline:           OfflineConfig{FloorLimit: "50000", TotalLimit: "500000", MaxCount: 100, MaxAge: Duration(48 * time.Hour)},
		Settlement: SettlementConfig{Cutoff: "02:00", Timezone: "Asia/Tokyo", FeeRates: map[string]string{
			"visa": "2.58", "mastercard": "2.58", "unionpay": "2.90", "jcb": "2.48", "amex": "3.25", "diners": "3.25",
		}},
		Reservations: ReservationConfig{NoShowCutoff: "18:00", Retention: Duration(7 * 24 * time.Hour), HoldAlert: Duration(sterad.DefaultHoldAlert)},
		Log:          LogConfig{Level: "info", Format: "text"},
		CardData:     sterad.CardDataBlind,
	}
}

// LoadConfig reads a YAML file over the defaults. Unknown keys are errors:
// a misspelt option must not be silently ignored. Every problem is
// reported at once (a *ConfigError): the keys that are unknown or of the
// wrong type, with their lines, and when there are any, the other options'
// problems too (Validate). Only a file that is not YAML at all stops at
// its first syntax error.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if path == "" {
		return cfg, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var problems []string
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return cfg, &ConfigError{Path: path, Problems: []string{strings.TrimPrefix(err.Error(), "yaml: ")}}
		}
		for _, e := range te.Errors {
			problems = append(problems, readableYAMLError(e))
		}
	}
	if cfg.DataDir != "" && !filepath.IsAbs(cfg.DataDir) {
		cfg.DataDir = filepath.Join(filepath.Dir(path), cfg.DataDir)
	}
	if cfg.KEKFile != "" && !filepath.IsAbs(cfg.KEKFile) {
		cfg.KEKFile = filepath.Join(filepath.Dir(path), cfg.KEKFile)
	}
	if len(problems) > 0 {
		problems = append(problems, validationProblems(cfg.Validate())...)
		return cfg, &ConfigError{Path: path, Problems: problems}
	}
	return cfg, nil
}

// ConfigError is every problem of a configuration file.
type ConfigError struct {
	Path     string
	Problems []string
}

func (e *ConfigError) Error() string {
	if len(e.Problems) == 1 {
		return fmt.Sprintf("config %s: %s", e.Path, e.Problems[0])
	}
	var b strings.Builder
	fmt.Fprintf(&b, "config %s: %d problems:", e.Path, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  " + p)
	}
	return b.String()
}

// validationProblems splits Validate's joined error into its problems.
func validationProblems(err error) []string {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, validationProblems(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

// readableYAMLError rewrites yaml.v3's "field x not found in type
// main.Config" as an unknown key, and its Go type names as YAML's.
func readableYAMLError(s string) string {
	if line, rest, ok := strings.Cut(s, ": field "); ok {
		if key, _, ok := strings.Cut(rest, " not found in type "); ok {
			return fmt.Sprintf("%s: unknown key %q", line, key)
		}
	}
	s = strings.NewReplacer("!!str", "a string", "!!int", "a number", "!!bool", "true/false", "!!map", "a mapping", "!!seq", "a list",
		"!!float", "a number", "main.", "").Replace(s)
	return s
}

// ApplyEnv overrides options from the environment.
func (c *Config) ApplyEnv() {
	for env, dst := range map[string]*string{
		"STERAD_DATA_DIR":         &c.DataDir,
		"STERAD_API_LISTEN":       &c.API.Listen,
		"STERAD_ACQUIRER_ADDRESS": &c.Acquirer.Address,
		"STERAD_MERCHANT_ID":      &c.MerchantID,
		"STERAD_KEK_FILE":         &c.KEKFile,
		"STERAD_LOG_LEVEL":        &c.Log.Level,
	} {
		if v := os.Getenv(env); v != "" {
			*dst = v
		}
	}
}

var (
	ansRe  = regexp.MustCompile(`^[ -~]+$`)
	timeRe = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
)

// Validate checks every option and returns all problems at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.MerchantID == "" || len(c.MerchantID) > 15 || !ansRe.MatchString(c.MerchantID) {
		bad("merchant_id must be 1–15 printable ASCII characters (DE 42)")
	}
	if c.VirtualTerminalID == "" || len(c.VirtualTerminalID) > 8 || !ansRe.MatchString(c.VirtualTerminalID) {
		bad("virtual_terminal_id must be 1–8 printable ASCII characters (DE 41)")
	}
	if c.DataDir == "" {
		bad("data_dir is required")
	}
	if c.API.Listen == "" {
		bad("api.listen is required")
	}
	c.API.validate(bad)
	c.Retention.validate(bad)
	if c.Acquirer.Address == "" {
		bad("acquirer.address is required")
	}
	if c.Acquirer.Timeout.D() <= 0 {
		bad("acquirer.timeout must be more than zero")
	}
	seenID := map[string]bool{c.VirtualTerminalID: true}
	seenDev := map[string]string{}
	seenUSB := map[string][]struct{ id, serial string }{}
	for i, t := range c.Terminals {
		where := fmt.Sprintf("terminals[%d]", i)
		if t.ID == "" || len(t.ID) > 8 || !ansRe.MatchString(t.ID) {
			bad("%s: id must be 1–8 printable ASCII characters (DE 41)", where)
		} else if seenID[t.ID] {
			bad("%s: id %s is used twice (terminal IDs and the virtual terminal ID must differ)", where, t.ID)
		}
		seenID[t.ID] = true
		if t.Kind != sterad.KindFixed && t.Kind != sterad.KindHandheld {
			bad("%s (%s): unknown kind %q: use fixed or handheld", where, t.ID, t.Kind)
		}
		if (t.Port == "") == (t.USB == nil) {
			bad("%s (%s): give exactly one of port or usb", where, t.ID)
		}
		dev := t.Port
		if t.USB != nil {
			key, err := usbDeviceKey(t.USB)
			if err != nil {
				bad("%s (%s): usb: %s", where, t.ID, err)
			}
			dev = key
			// Two terminals with the same vendor and product ids must both
			// name their serial number, or one could take the other's device.
			vidpid, serial, _ := strings.Cut(key, "/")
			for _, o := range seenUSB[vidpid] {
				if serial == "" || o.serial == "" {
					bad("%s (%s): terminal %s also uses USB %s: give each its serial number", where, t.ID, o.id, strings.TrimPrefix(vidpid, "usb:"))
				}
			}
			seenUSB[vidpid] = append(seenUSB[vidpid], struct{ id, serial string }{t.ID, serial})
		}
		if dev != "" {
			if other, dup := seenDev[dev]; dup {
				bad("%s (%s): device %s is already used by terminal %s", where, t.ID, dev, other)
			}
			seenDev[dev] = t.ID
		}
		switch t.Baud {
		case 0, 9600, 19200, 38400, 115200:
		default:
			bad("%s (%s): baud %d: use 9600, 19200, 38400 or 115200", where, t.ID, t.Baud)
		}
	}
	for name, v := range map[string]string{"offline.floor_limit": c.Offline.FloorLimit, "offline.total_limit": c.Offline.TotalLimit} {
		if _, err := sterad.ParseAmount(v, sterad.JPY); err != nil {
			bad("%s: %s", name, sterad.ErrorMessage(err))
		}
	}
	if c.Offline.MaxCount < 0 {
		bad("offline.max_count must not be negative")
	}
	if !timeRe.MatchString(c.Settlement.Cutoff) {
		bad("settlement.cutoff %q is not a time like \"02:00\"", c.Settlement.Cutoff)
	}
	if _, err := time.LoadLocation(c.Settlement.Timezone); err != nil || c.Settlement.Timezone == "" {
		bad("settlement.timezone %q is not a known time zone", c.Settlement.Timezone)
	}
	for brand, rate := range c.Settlement.FeeRates {
		if _, ok := sterad.ParseBrand(brand); !ok {
			bad("settlement.fee_rates: unknown brand %q: use visa, mastercard, jcb, amex, diners, unionpay", brand)
		}
		if d, err := decimal.NewFromString(rate); err != nil || d.IsNegative() || d.GreaterThan(decimal.NewFromInt(100)) {
			bad("settlement.fee_rates.%s: %q is not a percentage", brand, rate)
		}
	}
	errs = append(errs, c.reservationErrors()...) // reservations: and vouchers: (config_reservations.go)
	switch c.CardData {
	case sterad.CardDataBlind, sterad.CardDataClear:
	default:
		bad("card_data %q: use blind (terminals encrypt, sterad never holds a card number) or clear", c.CardData)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level %q: use debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format %q: use text or json", c.Log.Format)
	}
	return errors.Join(errs...)
}

// Location returns the settlement time zone (validated).
func (c *Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.Settlement.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// placeholderMerchantRe matches merchant IDs that are examples, not an
// acquirer's: the default HOTEL0000000001, all zeros, letters and zeros.
var placeholderMerchantRe = regexp.MustCompile(`^[A-Za-z]*0+1?$`)

// Warnings are the options of a valid configuration that should not be
// used with a real acquirer: a placeholder merchant ID and a plain-TCP
// acquirer link. The simulator (serve --simulate) has none.
func (c *Config) Warnings(simulate bool) []string {
	if simulate {
		return nil
	}
	var w []string
	if placeholderMerchantRe.MatchString(c.MerchantID) {
		w = append(w, fmt.Sprintf("merchant_id %s looks like a placeholder: set the merchant ID your acquirer gave you", c.MerchantID))
	}
	if !c.Acquirer.TLS {
		w = append(w, fmt.Sprintf("acquirer.tls is false: the link to %s is plain TCP, which only the test acquirer accepts; card data and the merchant's answers would cross the network in clear. Set acquirer.tls: true", c.Acquirer.Address))
	}
	return w
}
