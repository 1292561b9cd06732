package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sterad/sterad/api"
)

// A non-loopback api.listen without TLS is refused unless explicitly
// allowed.
func TestConfigRefusesPlainNonLoopbackListen(t *testing.T) {
	for _, tt := range []struct {
		name    string
		api     APIConfig
		refused bool
	}{
		{"loopback v4", APIConfig{Listen: "127.0.0.1:7583"}, false},
		{"loopback v6", APIConfig{Listen: "[::1]:7583"}, false},
		{"localhost", APIConfig{Listen: "localhost:7583"}, false},
		{"all interfaces", APIConfig{Listen: ":7583"}, true},
		{"0.0.0.0", APIConfig{Listen: "0.0.0.0:7583"}, true},
		{"LAN address", APIConfig{Listen: "192.168.1.20:7583"}, true},
		{"host name", APIConfig{Listen: "sterad.hotel.lan:7583"}, true},
		{"LAN with TLS", APIConfig{Listen: "0.0.0.0:7583", APILimits: APILimits{TLSCert: "c.pem", TLSKey: "k.pem"}}, false},
		{"LAN allowed in clear", APIConfig{Listen: "0.0.0.0:7583", APILimits: APILimits{AllowInsecureListen: true}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.API = tt.api
			err := cfg.Validate()
			if refused := err != nil && strings.Contains(err.Error(), "allow_insecure_listen"); refused != tt.refused {
				t.Fatalf("Validate = %v, want refused %v", err, tt.refused)
			}
		})
	}
	cfg := DefaultConfig()
	cfg.API.TLSCert = "c.pem"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "tls_key") {
		t.Fatalf("a certificate without its key: %v", err)
	}
}

// The configuration file takes the API keys.
func TestConfigAPIKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sterad.yaml")
	os.WriteFile(path, []byte(`api:
  listen: 0.0.0.0:7583
  tls_cert: /etc/sterad/api.crt
  tls_key: /etc/sterad/api.key
  max_connections: 100
  max_unauthenticated_connections: 10
  read_header_timeout: 2s
  read_timeout: 20s
  write_timeout: 40s
  idle_timeout: 30s
  healthz_min_free_mb: 1024
`), 0o600)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	want := APIConfig{Listen: "0.0.0.0:7583", APILimits: APILimits{TLSCert: "/etc/sterad/api.crt", TLSKey: "/etc/sterad/api.key",
		MaxConnections: 100, MaxUnauthenticatedConnections: 10, ReadHeaderTimeout: Duration(2 * time.Second),
		ReadTimeout: Duration(20 * time.Second), WriteTimeout: Duration(40 * time.Second), IdleTimeout: Duration(30 * time.Second), HealthzMinFreeMB: 1024}}
	if cfg.API != want {
		t.Fatalf("api = %+v", cfg.API)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sterad test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// The API serves HTTPS with the configured certificate; plain HTTP gets
// nothing useful.
func TestAPIServesTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	var m *Main
	logs := &syncBuffer{}
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.API.Listen = "127.0.0.1:0"
	cfg.API.TLSCert, cfg.API.TLSKey = certFile, keyFile
	cfg.Acquirer.Address = "127.0.0.1:0"
	m = &Main{Config: cfg, Simulate: true, NoNightlyClose: true, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	c := api.NewClient("https://"+m.APIAddr, m.Token)
	c.HTTP = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("status over TLS: %v", err)
	}
	if !strings.Contains(logs.String(), "https://"+m.APIAddr) {
		t.Errorf("the ready line does not say https:\n%s", logs.String())
	}
	plain := api.NewClient("http://"+m.APIAddr, m.Token)
	plain.HTTP = &http.Client{Timeout: 10 * time.Second}
	if _, err := plain.Status(context.Background()); err == nil {
		t.Fatal("plain HTTP was answered")
	}
	// A wrong key for the certificate is refused at start.
	_, otherKey, _ := selfSigned(t)
	cfg.API.TLSKey = otherKey
	cfg.DataDir = t.TempDir()
	m2 := &Main{Config: cfg, Simulate: true, NoNightlyClose: true}
	if err := m2.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "api.tls_cert") {
		m2.Close()
		t.Fatalf("start with a mismatched key: %v", err)
	}
}

// An api.token open to other users is made 0600 with a warning; one that
// is not a regular file is refused.
func TestTokenFileModeFixedOrRefused(t *testing.T) {
	t.Setenv("STERAD_API_TOKEN", "")
	dir := t.TempDir()
	path := filepath.Join(dir, "api.token")
	os.WriteFile(path, []byte("secret-token\n"), 0o644)
	os.Chmod(path, 0o644)
	logs := &syncBuffer{}
	tok, err := loadToken(dir, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil || tok != "secret-token" {
		t.Fatalf("loadToken = %q, %v", tok, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", fi.Mode().Perm())
	}
	if !strings.Contains(logs.String(), "open to other users") || !strings.Contains(logs.String(), "was=0644") {
		t.Fatalf("no warning:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "secret-token") {
		t.Fatal("the token reached the log")
	}

	link := filepath.Join(t.TempDir(), "api.token")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := loadToken(filepath.Dir(link), slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("a symbolic link: %v", err)
	}

	// A new token is made 0600.
	fresh := t.TempDir()
	if _, err := loadToken(fresh, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(fresh, "api.token")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("new token mode %04o", fi.Mode().Perm())
	}
}

// A reference that is a card number is refused before anything is
// stored, and the answer does not echo it.
func TestReferenceThatIsACardNumberRefused(t *testing.T) {
	d := startDaemon(t, clearMode)
	for _, ref := range []string{"4111111111111111", "4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005"} {
		e := d.postErr(api.TransactionRequest{Op: "sale", Amount: "1000", Card: keyed("4000000000000002"), Reference: ref})
		if e.Status != 400 || e.Code != "invalid_reference" {
			t.Fatalf("reference %q: %d %s %s", ref, e.Status, e.Code, e.Message)
		}
		if strings.Contains(e.Message, strings.ReplaceAll(strings.ReplaceAll(ref, " ", ""), "-", "")[6:12]) {
			t.Fatalf("the answer echoes the number: %s", e.Message)
		}
	}
	if n := d.count(); n != 0 {
		t.Fatalf("%d transactions stored", n)
	}
	// Folio numbers, even long numeric ones that fail Luhn, pass.
	for _, ref := range []string{"RSV-20261121-0042", "4111111111111112", "12345"} {
		tx := d.post(api.TransactionRequest{Op: "sale", Amount: "1000", Card: keyed("4111111111111111"), Reference: ref})
		if tx.Reference != ref {
			t.Fatalf("reference %q stored as %q", ref, tx.Reference)
		}
	}
}

// A store write that fails (a full disk) is a 503 that says so, nothing
// is sent to the acquirer, and /healthz says failing until writes
// succeed again.
func TestDiskFullAnswers503AndHealthFailing(t *testing.T) {
	var full atomic.Bool
	d := startDaemon(t, clearMode, func(m *Main) {
		m.health.writeFault = func() error {
			if full.Load() {
				return &os.PathError{Op: "write", Path: filepath.Join(m.Config.DataDir, "sterad.db"), Err: syscall.ENOSPC}
			}
			return nil
		}
		m.health.freeBytes = func(string) (uint64, error) {
			if full.Load() {
				return 3 << 20, nil
			}
			return 10 << 30, nil
		}
	})
	health := func() (int, api.Health) {
		t.Helper()
		resp, err := http.Get("http://" + d.m.APIAddr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var h api.Health
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, h
	}
	if code, h := health(); code != 200 || h.Status != "ok" {
		t.Fatalf("healthy daemon: %d %+v", code, h)
	}
	before := d.m.SimHost.Stats().Requests["0200"]

	full.Store(true)
	e := d.postErr(api.TransactionRequest{Op: "sale", Amount: "1000", Card: keyed("4111111111111111"), Reference: "RSV-1"})
	if e.Status != 503 || e.Code != api.CodeJournalUnwritable || !strings.Contains(e.Message, "disk is full") || !strings.Contains(e.Message, "nothing was charged") {
		t.Fatalf("sale on a full disk: %d %s %q", e.Status, e.Code, e.Message)
	}
	if after := d.m.SimHost.Stats().Requests["0200"]; after != before {
		t.Fatalf("%d authorizations sent while the journal could not be written", after-before)
	}
	var h api.Health
	d.waitFor("/healthz failing", func() bool {
		var code int
		code, h = health()
		return code == 503 && h.Status == "failing"
	})
	checks := map[string]string{}
	for _, p := range h.Problems {
		checks[p.Check] = p.Message
	}
	if !strings.Contains(checks["store"], "disk is full") || !strings.Contains(checks["disk"], "3 MB free") {
		t.Fatalf("problems %+v", h.Problems)
	}

	full.Store(false)
	tx := d.post(api.TransactionRequest{Op: "sale", Amount: "1000", Card: keyed("4111111111111111"), Reference: "RSV-1"})
	if tx.Status != "approved" {
		t.Fatalf("after space was freed: %s %s", tx.Status, tx.Reason)
	}
	d.waitFor("/healthz ok again", func() bool { code, h := health(); return code == 200 && h.Status == "ok" })
}

// An acquirer outage makes /healthz degraded: 200, 503 with ?strict.
func TestHealthzDegradedWhileAcquirerDown(t *testing.T) {
	d := startDaemon(t, clearMode)
	if err := d.m.SimHost.SetOutage(true); err != nil {
		t.Fatal(err)
	}
	d.waitFor("healthz degraded", func() bool {
		resp, err := http.Get("http://" + d.m.APIAddr + "/healthz?strict")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var h api.Health
		json.NewDecoder(resp.Body).Decode(&h)
		return resp.StatusCode == 503 && h.Status == "degraded" && len(h.Problems) == 1 && h.Problems[0].Check == "acquirer"
	})
	resp, err := http.Get("http://" + d.m.APIAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("plain /healthz while the acquirer is down: %d", resp.StatusCode)
	}
}

// Hundreds of idle connections without the token neither exhaust the
// daemon nor keep a client with the token out.
func TestAPIConnectionFloodBounded(t *testing.T) {
	d := startDaemon(t, clearMode)
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range 600 {
		c, err := net.Dial("tcp", d.m.APIAddr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	d.waitFor("the flood accepted", func() bool { return d.m.connGuard.Stats().Evicted >= 600-api.DefaultMaxUnauthenticatedConns })
	if st := d.m.connGuard.Stats(); st.Open > api.DefaultMaxConns || st.Unauthenticated > api.DefaultMaxUnauthenticatedConns {
		t.Fatalf("stats %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tx, _, err := d.c.CreateTransaction(ctx, api.TransactionRequest{Op: "sale", Amount: "1000", Card: keyed("4111111111111111"), Reference: "RSV-9"}, api.CreateOptions{})
	if err != nil || tx.Status != "approved" {
		t.Fatalf("sale during the flood: %v", err)
	}
	// The oldest flood connection was closed by the daemon.
	conns[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, conns[0]); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the oldest unauthenticated connection is still open")
		}
	}
}
