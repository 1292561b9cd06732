package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/simulator/acquirer"
	"github.com/sterad/sterad/simulator/terminal"
)

func newSimCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "sim", Short: "Run a simulator on its own: the test acquirer or a card terminal"}
	cmd.AddCommand(newSimAcquirerCommand(g), newSimTerminalCommand(g))
	return cmd
}

func newSimAcquirerCommand(g *globalOptions) *cobra.Command {
	var listen, control, data string
	cmd := &cobra.Command{
		Use:   "acquirer",
		Short: "Run the test acquirer host (acquirer-host.md §7) with its control API",
		Long: `Run the test acquirer. It approves everything but the test cards of
acquirer-host.md §7, and keeps a ledger.

Control API on --control: POST /outage {"on":true}, POST /delay {"ms":2000},
POST /drop {"count":1}, POST /disagree {"on":true}, GET /ledger.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(cmd.ErrOrStderr(), LogConfig{Level: "info", Format: "text"})
			if err != nil {
				return err
			}
			host := acquirer.New(acquirer.Options{Logger: logger, DataDir: data})
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen %s: %w", listen, err)
			}
			errc := make(chan error, 2)
			go func() { errc <- host.Serve(ln) }()
			ctl := &http.Server{Addr: control, Handler: host.Handler(), ReadHeaderTimeout: 10 * time.Second}
			go func() { errc <- ctl.ListenAndServe() }()
			fmt.Fprintf(cmd.OutOrStdout(), "test acquirer on %s, control API on http://%s\n", ln.Addr(), control)
			select {
			case <-cmd.Context().Done():
			case err := <-errc:
				if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, acquirer.ErrClosed) {
					return err
				}
			}
			ctl.Close()
			host.Close()
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8583", "ISO 8583 listen address")
	cmd.Flags().StringVar(&control, "control", "127.0.0.1:8584", "control API address")
	cmd.Flags().StringVar(&data, "data", "", "keep the ledger in this directory across restarts")
	return cmd
}

func newSimTerminalCommand(g *globalOptions) *cobra.Command {
	var kind, id, link, control, data string
	var present time.Duration
	var clear bool
	cmd := &cobra.Command{
		Use:   "terminal",
		Short: "Run a simulated card terminal on a new pseudo-terminal",
		Long: `Run a simulated terminal (terminal-link.md, terminal side) on a new pty whose
slave is symlinked at --link; point a terminal's port at that path.

Control API on --control: POST /card {"pan","expiry","entry","action"},
POST /fault {"kind":"drop_ack|bad_crc|garbage|truncate|silence|unplug|reboot","count":1},
GET /state, GET /slips.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kind != sterad.KindFixed && kind != sterad.KindHandheld {
				return fmt.Errorf("--kind must be fixed or handheld, not %q", kind)
			}
			if link == "" {
				return errors.New("--link PATH is required: where to symlink the pty's slave")
			}
			logger, err := newLogger(cmd.ErrOrStderr(), LogConfig{Level: "info", Format: "text"})
			if err != nil {
				return err
			}
			t := terminal.New(terminal.Config{ID: id, Kind: kind, PresentDelay: present, Logger: logger, Clear: clear, StateDir: data})
			ctl := &http.Server{Addr: control, Handler: t.Handler(), ReadHeaderTimeout: 10 * time.Second}
			errc := make(chan error, 2)
			go func() { errc <- t.ListenPTY(cmd.Context(), link) }()
			go func() { errc <- ctl.ListenAndServe() }()
			fmt.Fprintf(cmd.OutOrStdout(), "%s terminal %s on %s, control API on http://%s\n", kind, t.ID(), link, control)
			select {
			case <-cmd.Context().Done():
			case err := <-errc:
				if err != nil && !errors.Is(err, http.ErrServerClosed) {
					ctl.Close()
					return err
				}
			}
			ctl.Close()
			return nil
		},
	}
	cmd.Flags().StringVar(&kind, "kind", sterad.KindFixed, "fixed or handheld")
	cmd.Flags().StringVar(&id, "id", "", "terminal ID (default FRONT001 or HAND0001)")
	cmd.Flags().StringVar(&link, "link", "", "symlink to create for the pty's slave, e.g. /tmp/FRONT001.tty")
	cmd.Flags().StringVar(&control, "control", "127.0.0.1:8585", "control API address")
	cmd.Flags().DurationVar(&present, "present", 500*time.Millisecond, "simulated card-presentation time")
	cmd.Flags().BoolVar(&clear, "clear", false, "send card data in clear (no p2pe), for card_data: clear")
	cmd.Flags().StringVar(&data, "data", "", "keep the DUKPT transaction counter in this directory across restarts")
	return cmd
}
