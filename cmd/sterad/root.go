package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sterad/sterad/api"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// globalOptions are the flags every command takes.
type globalOptions struct {
	configPath string
	apiAddr    string
	token      string // --api-token (or the hidden global --token)
	dataDir    string
	json       bool
	logLevel   string
}

func (o *globalOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&o.configPath, "config", os.Getenv("STERAD_CONFIG"), "YAML configuration file (env STERAD_CONFIG)")
	f.StringVar(&o.apiAddr, "api", os.Getenv("STERAD_API"), "address of the sterad API for client commands (env STERAD_API; default from the config, 127.0.0.1:7583)")
	f.StringVar(&o.token, "api-token", "", "API bearer token (default: env STERAD_API_TOKEN, then DATA_DIR/api.token)")
	// The old name, kept for scripts: hidden, and shadowed on the commands
	// whose own --token is a card token (noshow, deposit, cardcheck).
	f.StringVar(&o.token, "token", "", "API bearer token (deprecated: use --api-token)")
	f.MarkHidden("token")
	f.StringVar(&o.logLevel, "log-level", "", "log level: debug, info, warn, error (env STERAD_LOG_LEVEL; overrides log.level)")
	f.StringVar(&o.dataDir, "data", "", "data directory (overrides data_dir)")
	f.BoolVar(&o.json, "json", false, "machine-readable JSON output")
}

// config loads the configuration with environment and flag overrides.
func (o *globalOptions) config() (Config, error) {
	cfg, err := LoadConfig(o.configPath)
	if err != nil {
		return cfg, &cliError{exit: ExitBadInput, code: "invalid_config", err: err}
	}
	cfg.ApplyEnv()
	if o.dataDir != "" {
		cfg.DataDir = o.dataDir
	}
	if o.logLevel != "" {
		cfg.Log.Level = o.logLevel
	}
	setMerchantZone(cfg) // cliout.go: times in the merchant's zone
	return cfg, nil
}

// client returns an API client for the client commands.
func (o *globalOptions) client() (*api.Client, error) {
	cfg, err := o.config()
	if err != nil {
		return nil, err
	}
	addr := o.apiAddr
	if addr == "" {
		addr = cfg.API.Listen
	}
	token := o.token
	if token == "" {
		token = os.Getenv("STERAD_API_TOKEN")
	}
	if token == "" {
		b, err := os.ReadFile(filepath.Join(cfg.DataDir, "api.token"))
		if err != nil {
			return nil, fmt.Errorf("no API token: pass --api-token, set STERAD_API_TOKEN, or point --data at the daemon's data directory (%v)", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return api.NewClient(addr, token), nil
}

// NewRootCommand returns the sterad command tree.
func NewRootCommand() *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:   "sterad",
		Short: "Payment terminal gateway for hotels",
		Long: `sterad drives the hotel's card terminals, authorizes with the acquirer over
ISO 8583, keeps every transaction in a local journal, stands in while the
acquirer is unreachable, and closes the batch every night.

Start here:  sterad serve --simulate     (daemon with simulated acquirer and terminals)
             sterad demo                 (a scripted front-desk day)`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	g.AddFlags(root)
	root.AddCommand(
		newServeCommand(g),
		newSimCommand(g),
		newDemoCommand(g),
		newBenchCommand(g),
	)
	root.AddCommand(newPaymentCommands(g)...)
	root.AddCommand(newTxnCommand(g), newTerminalsCommand(g), newQueueCommand(g), newStatusCommand(g), newVaultCommand(g),
		newBatchCommand(g), newReportCommand(g), newCheckoutCommand(g), newHoldsCommand(g))
	root.AddCommand(newKeysCommand(g), newStoreCommand(g), newBackupCommand(g), newRestoreCommand(g)) // storecmd.go, keys.go
	root.AddCommand(newUserCommand(g))                                                                // console.go
	root.AddCommand(newVersionCommand(g), newManCommand())                                            // version.go, man.go
	root.AddCommand(newInitCommand(g), newDoctorCommand(g))                                           // init.go, doctor.go
	markUsageErrors(root)                                                                             // cliout.go: exit 4
	return root
}
