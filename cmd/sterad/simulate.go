package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/simulator/acquirer"
	"github.com/sterad/sterad/simulator/terminal"
)

// startSimulators starts the embedded test acquirer and one simulated
// terminal per configured terminal, each on a new pty whose slave is
// symlinked at the terminal's port.
func (m *Main) startSimulators(ctx context.Context) error {
	cfg := &m.Config
	hostDir := filepath.Join(cfg.DataDir, "sim", "acquirer")
	if m.SimHostMemory {
		hostDir = ""
	}
	host := acquirer.New(acquirer.Options{
		Clock: m.Clock, Logger: m.Logger.With("component", "sim-acquirer"), Location: cfg.Location(), DataDir: hostDir,
	})
	ln, err := net.Listen("tcp", cfg.Acquirer.Address)
	if err != nil {
		return fmt.Errorf("test acquirer: listen %s: %w", cfg.Acquirer.Address, err)
	}
	cfg.Acquirer.Address = ln.Addr().String()
	m.SimHost = host
	m.goRun(func() { host.Serve(ln) })
	m.closers = append(m.closers, func() { host.Close() })

	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "sim"), 0o700); err != nil {
		return err
	}
	m.SimTerminals = map[string]*terminal.Terminal{}
	for _, tc := range cfg.Terminals {
		t := terminal.New(terminal.Config{
			ID: tc.ID, Kind: tc.Kind, PresentDelay: m.SimPresentDelay, Link: m.SimLink, Clock: m.Clock,
			Logger: m.Logger.With("component", "sim-terminal"), StateDir: filepath.Join(cfg.DataDir, "sim"),
			// Blind: encrypting (p2pe) terminals; clear: today's
			// terminals, which send the card in clear.
			Clear: cfg.CardData == sterad.CardDataClear,
		})
		m.SimTerminals[tc.ID] = t
		link := tc.Port
		m.goRun(func() {
			if err := t.ListenPTY(ctx, link); err != nil {
				m.Logger.Error("simulated terminal", "terminal", tc.ID, "err", err)
			}
		})
		if err := waitForPath(ctx, link, 5*time.Second); err != nil {
			return fmt.Errorf("simulated terminal %s: %w", tc.ID, err)
		}
	}
	return nil
}

// waitForPath polls until path exists.
func waitForPath(ctx context.Context, path string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if _, err := os.Lstat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %s", path, within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// simulators are the embedded simulators' controls, which the API serves
// under /v1/sim/.
type simulators struct {
	host      *acquirer.Host
	terminals map[string]*terminal.Terminal
}

var _ api.Simulators = simulators{}

// Acquirer serves the test acquirer's controls.
func (s simulators) Acquirer() http.Handler { return s.host.Handler() }

// Terminal serves the controls of simulated terminal id.
func (s simulators) Terminal(id string) (http.Handler, bool) {
	t, ok := s.terminals[id]
	if !ok {
		return nil, false
	}
	return t.Handler(), true
}
