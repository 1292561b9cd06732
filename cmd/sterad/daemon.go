package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/gateway"
	"github.com/sterad/sterad/offline"
	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/settlement"
	"github.com/sterad/sterad/simulator/acquirer"
	"github.com/sterad/sterad/simulator/terminal"
)

// Main is the sterad daemon: it wires the store, the acquirer link, the
// terminal sessions, the gateway and the HTTP API. Tests and the demo
// start it in-process.
type Main struct {
	Config   Config
	Simulate bool // embedded test acquirer and simulated terminals
	Logger   *slog.Logger
	Clock    sterad.Clock

	// Tuning for tests and the demo; zero values take the defaults.
	SimPresentDelay time.Duration        // simulated card-presentation time
	SimHostMemory   bool                 // the test acquirer keeps its ledger in memory only
	SimLink         protocol.LinkOptions // simulated terminals' link timers
	SessionTuning   func(*device.SessionConfig)
	GatewayTuning   func(*gateway.Config)
	ClientTuning    func(*protocol.ClientOptions)
	WrapAcquirer    func(sterad.Acquirer) sterad.Acquirer // bench: time the exchanges
	NoNightlyClose  bool                                  // tests: close batches only on demand
	StoreTuning     func(*offline.Options)                // benchmarks: grouped commits on or off

	// Set by Run.
	DB           *offline.DB
	Client       *protocol.Client
	Sessions     map[string]*device.Session
	Gateway      *gateway.Gateway
	APIAddr      string // the address the API listens on
	Token        string
	SimHost      *acquirer.Host
	SimTerminals map[string]*terminal.Terminal

	// Settlement, loaded from the configuration.
	fees     settlement.FeeTable
	calendar *settlement.Calendar
	cutoff   time.Duration

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	httpSrv   *http.Server
	connGuard *api.ConnGuard // the API's connection bounds (apiserver.go)
	journal   *journalStore  // the store as the gateway sees it (health.go)
	health    healthConfig   // seams of /healthz's checks
	closers   []func()
	closeOnce sync.Once

	metrics     *daemonMetrics // metrics.go
	metricsOnce sync.Once
}

// DefaultStopMargin is added to the acquirer timeout for the stop's grace
// when shutdown_grace is not configured: the time to journal the answer
// and show it at the terminal.
const DefaultStopMargin = 5 * time.Second

// stopGrace is how long a stop lets payments in flight finish.
func (m *Main) stopGrace() time.Duration {
	if g := m.Config.ShutdownGrace.D(); g > 0 {
		return g
	}
	return m.Config.Acquirer.Timeout.D() + DefaultStopMargin
}

// Serve runs the daemon until ctx ends (SIGINT or SIGTERM), then stops it
// in order (see Close), logs "stopped" and returns nil. ready, if set, is
// called once the API listens.
func (m *Main) Serve(ctx context.Context, ready func()) error {
	if err := m.Run(ctx); err != nil {
		return err
	}
	if ready != nil {
		ready()
	}
	<-ctx.Done()
	m.Logger.Info("stopping: payments in flight may finish", "grace", m.stopGrace())
	m.Close()
	m.Logger.Info("stopped")
	return nil
}

// Run starts everything and returns once the API listens. Close stops it:
// nothing started here ends with ctx, so that a signal (which ends the
// caller's ctx) cannot cut a payment off; Close stops it in order.
func (m *Main) Run(ctx context.Context) (err error) {
	if m.Logger == nil {
		m.Logger = slog.New(slog.DiscardHandler)
	}
	if m.Clock == nil {
		m.Clock = sterad.SystemClock{}
	}
	if m.Simulate && len(m.Config.Terminals) == 0 {
		m.Config.Terminals = []TerminalConfig{
			{ID: "FRONT001", Kind: sterad.KindFixed},
			{ID: "HAND0001", Kind: sterad.KindHandheld},
		}
	}
	cfg := &m.Config
	if m.Simulate {
		for i := range cfg.Terminals {
			cfg.Terminals[i].Port = filepath.Join(cfg.DataDir, "sim", cfg.Terminals[i].ID+".tty")
			cfg.Terminals[i].USB = nil
		}
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if m.Token, err = loadToken(cfg.DataDir, m.Logger); err != nil {
		return err
	}
	if m.Simulate {
		if err := m.startSimulators(ctx); err != nil {
			return err
		}
	}

	opts := offline.DefaultOptions()
	opts.Clock, opts.Logger = m.Clock, m.Logger.With("component", "store")
	if opts.KEKs, err = m.loadKEKs(); err != nil {
		return err
	}
	if m.StoreTuning != nil {
		m.StoreTuning(&opts)
	}
	if m.DB, err = offline.Open(cfg.DataDir, opts); err != nil {
		return storeRefusal(err)
	}
	m.closers = append(m.closers, func() { m.DB.Close() })
	// Opening walked the store (its free pages, its kept cards): none of
	// that need stay resident.
	if err := m.DB.ReleaseMapped(); err != nil {
		m.Logger.Warn("the store's pages read at its opening stay in memory", "err", err)
	}

	if err := m.startClient(ctx); err != nil {
		return err
	}
	var acq sterad.Acquirer = m.Client
	if m.WrapAcquirer != nil {
		acq = m.WrapAcquirer(acq)
	}
	acq = m.meterAcquirer(acq)

	m.Sessions = map[string]*device.Session{}
	var terms []sterad.Terminal
	bootID := newBootID()
	for _, t := range cfg.Terminals {
		l, err := terminalTransport(t, t.USB != nil && t.USB.CDCACM)
		if err != nil {
			return fmt.Errorf("terminal %s: %w", t.ID, err)
		}
		sc := device.SessionConfig{
			ID: t.ID, Kind: t.Kind, Transport: l.Transport, Path: l.Path, USB: l.USB,
			Open: l.Open, GatewayID: cfg.MerchantID, BootID: bootID,
			Logger:      m.Logger.With("component", "terminal"),
			RequireP2PE: cfg.CardData == sterad.CardDataBlind,
		}
		id := t.ID
		sc.OnReconnect = func(info sterad.TerminalInfo, bootChanged bool) {
			if m.Gateway != nil {
				m.Gateway.TerminalReconnected(id, bootChanged)
			}
		}
		if m.SessionTuning != nil {
			m.SessionTuning(&sc)
		}
		s := device.NewSession(sc)
		m.Sessions[t.ID] = s
		terms = append(terms, m.meterTerminal(s))
	}

	if err := m.loadSettlement(); err != nil {
		return err
	}
	policy, err := cfg.CancellationPolicy()
	if err != nil {
		return err
	}
	programs, err := cfg.VoucherPrograms()
	if err != nil {
		return err
	}
	gcfg := gateway.Config{
		MerchantID: cfg.MerchantID, VirtualTerminalID: cfg.VirtualTerminalID, Location: cfg.Location(),
		NoShowCutoff: clockTime(cfg.Reservations.NoShowCutoff), VaultRetention: cfg.Reservations.Retention.D(),
		Offline: cfg.offlineLimits(), Cutoff: m.cutoff, Summarize: m.summarize, StopGrace: m.stopGrace(),
		CardData:           cfg.CardData,
		CancellationPolicy: policy, VoucherPrograms: programs, HoldAlert: cfg.Reservations.HoldAlert.D(),
	}
	if m.GatewayTuning != nil {
		m.GatewayTuning(&gcfg)
	}
	m.Gateway, err = gateway.New(gcfg, gateway.Deps{
		Store: wrapStore(m.meterStore(m.guardJournal(m.DB))), Acquirer: acq, Terminals: terms, Clock: m.Clock,
		Logger: m.Logger.With("component", "gateway"), NewID: func() string { return ulid.Make().String() },
	})
	if err != nil {
		return err
	}
	if err := m.Gateway.Start(ctx); err != nil {
		return fmt.Errorf("start gateway: %w", err)
	}
	m.afterStart() // gc.go
	statuses := m.Client.Subscribe()
	m.goRun(func() {
		for {
			select {
			case st := <-statuses:
				m.Gateway.LinkChanged(st)
			case <-ctx.Done():
				return
			}
		}
	})
	for _, s := range m.Sessions {
		s := s
		m.goRun(func() { s.Run(ctx) })
		m.closers = append(m.closers, func() { s.Close() })
	}
	m.startRetention(ctx) // retention.go
	return m.startAPI()
}

// goRun runs f in a goroutine that Close waits for.
func (m *Main) goRun(f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

func (m *Main) startClient(ctx context.Context) error {
	cfg := m.Config
	co := protocol.ClientOptions{
		Address: cfg.Acquirer.Address, TerminalID: cfg.VirtualTerminalID, MerchantID: cfg.MerchantID,
		Timeout: cfg.Acquirer.Timeout.D(), STAN: m.DB.NextSTAN, Clock: m.Clock, Location: cfg.Location(),
		Logger: m.Logger.With("component", "acquirer"),
	}
	if cfg.Acquirer.TLS {
		tc, err := tlsConfig(cfg.Acquirer)
		if err != nil {
			return err
		}
		co.TLS = tc
	}
	if m.ClientTuning != nil {
		m.ClientTuning(&co)
	}
	c, err := protocol.NewClient(co)
	if err != nil {
		return fmt.Errorf("acquirer client: %w", err)
	}
	m.Client = c
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	m.closers = append(m.closers, func() { <-done })
	return nil
}

func tlsConfig(a AcquirerConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: a.ServerName}
	if tc.ServerName == "" {
		host, _, err := net.SplitHostPort(a.Address)
		if err != nil {
			return nil, fmt.Errorf("acquirer.address: %w", err)
		}
		tc.ServerName = host
	}
	if a.CAFile != "" {
		pem, err := os.ReadFile(a.CAFile)
		if err != nil {
			return nil, fmt.Errorf("acquirer.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("acquirer.ca_file %s holds no PEM certificate", a.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

func (m *Main) startAPI() error {
	ln, err := m.listenAPI()
	if err != nil {
		return err
	}
	m.APIAddr = ln.Addr().String()
	g := m.Gateway
	srv := &api.Server{
		Transactions: g, Terminals: g, Queue: g, Batches: g, Vault: g, Reservations: g, Status: g,
		Settlement: &settlementReports{batches: g, fees: m.fees, calendar: m.calendar},
		Token:      m.Token, Logger: m.Logger.With("component", "api"), Version: version,
		Metrics: m.metricsHandler(), Store: storeAdmin{m}, Payments: g, Health: m.healthProblems,
		AnswerTimeout: orDuration(m.Config.API.WriteTimeout, DefaultWriteTimeout),
	}
	if m.Simulate {
		srv.Simulators = simulators{host: m.SimHost, terminals: m.SimTerminals}
	}
	handler, err := m.withConsole(srv.Handler()) // console.go
	if err != nil {
		ln.Close()
		return err
	}
	m.httpSrv = m.newHTTPServer(m.meters().instrument(handler))
	m.goRun(func() {
		if err := m.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("API server", "err", err)
		}
	})
	m.Logger.Info("sterad is ready", "api", m.apiScheme()+"://"+m.APIAddr, "acquirer", m.Config.Acquirer.Address, "terminals", len(m.Config.Terminals), "data", m.Config.DataDir)
	return nil
}

// Close stops the daemon, in this order: the API stops taking requests
// (requests under way may finish); the gateway refuses new ones (503
// "stopping") and lets payments in flight finish their exchange with the
// acquirer and journal the answer, for at most the stop's grace, then
// cancels what remains (the recovery takes it up at the next start); then
// the terminal sessions and the acquirer link end, and the store is closed
// last. Close may be called more than once.
func (m *Main) Close() error {
	m.closeOnce.Do(func() {
		grace := m.stopGrace()
		httpDone := make(chan struct{})
		go func() {
			defer close(httpDone)
			if m.httpSrv == nil {
				return
			}
			// Handlers waiting for a payment end with the gateway's flows.
			ctx, cancel := context.WithTimeout(context.Background(), grace+DefaultStopMargin)
			defer cancel()
			if err := m.httpSrv.Shutdown(ctx); err != nil {
				m.httpSrv.Close()
			}
		}()
		if m.Gateway != nil {
			m.Gateway.Stop()
		}
		<-httpDone
		if m.cancel != nil {
			m.cancel()
		}
		for i := len(m.closers) - 1; i >= 0; i-- {
			m.closers[i]()
		}
		m.closers = nil
		m.wg.Wait()
	})
	return nil
}

func newBootID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// clockTime turns a validated "HH:MM" into the duration since midnight.
func clockTime(hhmm string) time.Duration {
	t, err := time.Parse("15:04", hhmm)
	if err != nil {
		return 0
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute
}

// offlineLimits converts the validated offline section.
func (c *Config) offlineLimits() sterad.OfflineLimits {
	floor, _ := sterad.ParseAmount(c.Offline.FloorLimit, sterad.JPY)
	total, _ := sterad.ParseAmount(c.Offline.TotalLimit, sterad.JPY)
	return sterad.OfflineLimits{FloorLimit: floor, TotalLimit: total, MaxCount: c.Offline.MaxCount, MaxAge: c.Offline.MaxAge.D()}
}
