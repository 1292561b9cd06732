package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// serveOptions are the flags of sterad serve.
type serveOptions struct {
	simulate bool
	listen   string
	acquirer string
}

func (o *serveOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&o.simulate, "simulate", false, "run with an embedded test acquirer and simulated terminals (FRONT001 fixed, HAND0001 handheld)")
	f.StringVar(&o.listen, "listen", "", "API listen address (overrides api.listen; env STERAD_API_LISTEN)")
	f.StringVar(&o.acquirer, "acquirer", "", "acquirer address (overrides acquirer.address; env STERAD_ACQUIRER_ADDRESS)")
}

func newServeCommand(g *globalOptions) *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: terminals, acquirer link, store, API, nightly batch",
		Long: `Run the sterad daemon in the foreground.

  sterad serve --config /etc/sterad/sterad.yaml
  sterad serve --simulate [--data DIR]     try it out: embedded test acquirer and terminals

The API token is read from STERAD_API_TOKEN or DATA_DIR/api.token (created on
first start, mode 0600). Client commands find it there with --data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			if o.simulate && g.dataDir == "" && g.configPath == "" && os.Getenv("STERAD_DATA_DIR") == "" {
				cfg.DataDir = filepath.Join(".", "sterad-data")
			}
			if o.listen != "" {
				cfg.API.Listen = o.listen
			}
			if o.acquirer != "" {
				cfg.Acquirer.Address = o.acquirer
			}
			logger, err := newLogger(cmd.ErrOrStderr(), cfg.Log)
			if err != nil {
				return err
			}
			for _, w := range cfg.Warnings(o.simulate) {
				logger.Warn(w)
			}
			tuneGC()
			m := &Main{Config: cfg, Simulate: o.simulate, Logger: logger}
			defer startProfiling(logger)() // profile.go: only when the environment asks
			// SIGINT/SIGTERM end cmd.Context(): Serve then stops the
			// daemon in order, letting payments in flight finish.
			ready := func() {
				if o.simulate {
					fmt.Fprintf(cmd.OutOrStdout(), `sterad is running with simulators.
  API            http://%s   (token in %s)
  test acquirer  %s
  terminals      %s
  try            sterad --data %s sale --terminal FRONT001 --amount 12800
Press Ctrl-C to stop.
`, m.APIAddr, filepath.Join(cfg.DataDir, "api.token"), m.Config.Acquirer.Address, terminalList(m.Config), cfg.DataDir)
				}
			}
			if err := m.Serve(cmd.Context(), ready); err != nil {
				return err
			}
			if o.simulate {
				fmt.Fprintln(cmd.OutOrStdout(), "sterad stopped.")
			}
			return nil
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func terminalList(c Config) string {
	var parts []string
	for _, t := range c.Terminals {
		parts = append(parts, fmt.Sprintf("%s (%s, %s)", t.ID, t.Kind, t.Port))
	}
	return strings.Join(parts, ", ")
}

// newLogger returns the daemon's logger. Nothing logged anywhere carries
// card data: PANs mask themselves, and payloads are never logged.
func newLogger(w io.Writer, c LogConfig) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
