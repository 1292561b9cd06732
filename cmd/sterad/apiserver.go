package main

import (
	"crypto/tls"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sterad/sterad/api"
)

// APILimits are the API's TLS, timeouts and connection bounds: the api.*
// keys beside api.listen (docs/configuration.md "API limits").
type APILimits struct {
	// TLSCert and TLSKey (PEM files) serve the API over HTTPS, for a
	// property system on another host.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// AllowInsecureListen accepts a non-loopback api.listen without TLS:
	// the token and keyed card numbers then cross the network in clear.
	AllowInsecureListen bool `yaml:"allow_insecure_listen"`

	MaxConnections                int `yaml:"max_connections"`                        // default 256
	MaxUnauthenticatedConnections int `yaml:"max_unauthenticated_connections"`        // default 64
	MaxUnauthenticatedPerIP       int `yaml:"max_unauthenticated_connections_per_ip"` // default 16

	ReadHeaderTimeout Duration `yaml:"read_header_timeout"` // default 5s
	ReadTimeout       Duration `yaml:"read_timeout"`        // default 30s: headers and body
	WriteTimeout      Duration `yaml:"write_timeout"`       // default 30s: the answer (after the wait, for payments)
	IdleTimeout       Duration `yaml:"idle_timeout"`        // default 60s: a keep-alive connection between requests

	// HealthzMinFreeMB: /healthz says degraded when data_dir's file system
	// has less free space than this (default 256).
	HealthzMinFreeMB int `yaml:"healthz_min_free_mb"`
}

// API defaults.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultHealthzMinFreeMB  = 256
	// MaxHeaderBytes bounds a request's headers (net/http's default is
	// 1 MB); the body is bounded by api.MaxBodyBytes.
	MaxHeaderBytes = 16 << 10
)

func orDuration(d Duration, def time.Duration) time.Duration {
	if d > 0 {
		return d.D()
	}
	return def
}

// validate checks the API's options; bad collects the problems.
func (a *APIConfig) validate(bad func(string, ...any)) {
	if (a.TLSCert == "") != (a.TLSKey == "") {
		bad("api.tls_cert and api.tls_key go together: give both, or neither")
	}
	if a.Listen != "" && a.TLSCert == "" && !a.AllowInsecureListen && !loopback(a.Listen) {
		bad("api.listen %s is not a loopback address and the API has no TLS: the token and keyed card numbers would cross the network in clear. Set api.tls_cert and api.tls_key, listen on 127.0.0.1, or set api.allow_insecure_listen: true", a.Listen)
	}
	if a.MaxConnections < 0 || a.MaxUnauthenticatedConnections < 0 || a.MaxUnauthenticatedPerIP < 0 {
		bad("api.max_connections, api.max_unauthenticated_connections and api.max_unauthenticated_connections_per_ip must not be negative")
	}
	if a.MaxConnections > 0 && a.MaxUnauthenticatedConnections > a.MaxConnections {
		bad("api.max_unauthenticated_connections (%d) is more than api.max_connections (%d)", a.MaxUnauthenticatedConnections, a.MaxConnections)
	}
	if a.HealthzMinFreeMB < 0 {
		bad("api.healthz_min_free_mb must not be negative")
	}
}

// loopback reports whether addr (host:port) listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// listenAPI opens the API's listener: bounded by m.connGuard, with TLS
// when configured.
func (m *Main) listenAPI() (net.Listener, error) {
	a := m.Config.API
	var tc *tls.Config
	if a.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(a.TLSCert, a.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("api.tls_cert/api.tls_key: %w", err)
		}
		tc = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
	}
	ln, err := net.Listen("tcp", a.Listen)
	if err != nil {
		return nil, fmt.Errorf("API listen: %w", err)
	}
	m.connGuard = &api.ConnGuard{Max: a.MaxConnections, MaxUnauthenticated: a.MaxUnauthenticatedConnections,
		MaxUnauthenticatedPerIP: a.MaxUnauthenticatedPerIP, Logger: m.Logger.With("component", "api")}
	ln = m.connGuard.Listener(ln)
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	} else if !loopback(a.Listen) {
		m.Logger.Warn("the API listens beyond loopback without TLS (api.allow_insecure_listen): the token and keyed card numbers cross the network in clear", "api", a.Listen)
	}
	return ln, nil
}

// newHTTPServer is the API's http.Server: timeouts, header bound, the
// connection guard's hooks, HTTP/1.1 only (one request at a time per
// connection, which the guard counts).
func (m *Main) newHTTPServer(h http.Handler) *http.Server {
	a := m.Config.API
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: orDuration(a.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       orDuration(a.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      orDuration(a.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:       orDuration(a.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    MaxHeaderBytes,
		ConnState:         m.connGuard.ConnState,
		ConnContext:       m.connGuard.ConnContext,
		Protocols:         new(http.Protocols),
		ErrorLog:          log.New(&httpErrorLog{log: m.Logger.With("component", "api")}, "", 0),
	}
	srv.Protocols.SetHTTP1(true)
	return srv
}

// apiScheme is "https" when the API serves TLS.
func (m *Main) apiScheme() string {
	if m.Config.API.TLSCert != "" {
		return "https"
	}
	return "http"
}

// httpErrorLog is net/http's error log (TLS handshake failures, accept
// errors) into the daemon's log at most 10 lines a minute: a flood of
// bad connections must not fill the disk.
type httpErrorLog struct {
	log     *slog.Logger
	mu      sync.Mutex
	start   time.Time
	n       int
	dropped int
}

func (h *httpErrorLog) Write(p []byte) (int, error) {
	h.mu.Lock()
	now := time.Now()
	if now.Sub(h.start) >= time.Minute {
		h.start, h.n = now, 0
	}
	h.n++
	if h.n > 10 {
		h.dropped++
		h.mu.Unlock()
		return len(p), nil
	}
	dropped := h.dropped
	h.dropped = 0
	h.mu.Unlock()
	args := []any{"err", strings.TrimSpace(string(p))}
	if dropped > 0 {
		args = append(args, "suppressed", dropped)
	}
	h.log.Warn("API server", args...)
	return len(p), nil
}
