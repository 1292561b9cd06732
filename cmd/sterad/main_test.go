package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/device"
	"github.com/sterad/sterad/gateway"
	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/terminal"
)

// testDaemon is sterad with its simulators, started in-process on real
// ptys and loopback TCP, with the link timers shortened.
type testDaemon struct {
	t   *testing.T
	m   *Main
	c   *api.Client
	log *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startDaemon(t *testing.T, tune ...func(*Main)) *testDaemon {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Acquirer.Address = "127.0.0.1:0"
	cfg.Acquirer.Timeout = Duration(2 * time.Second) // no test waits for it but the silent host; a loaded machine must not time out
	logs := &syncBuffer{}
	m := &Main{Config: cfg, Simulate: true, NoNightlyClose: true, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	m.SimLink = protocol.LinkOptions{T1: 50 * time.Millisecond, T2: 250 * time.Millisecond}
	m.SessionTuning = func(sc *device.SessionConfig) {
		sc.Link.T1, sc.Link.T2 = 50*time.Millisecond, 250*time.Millisecond
		sc.T3, sc.PingInterval, sc.HelloTimeout = time.Second, 300*time.Millisecond, time.Second
		sc.Backoff = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}
	}
	m.ClientTuning = func(o *protocol.ClientOptions) {
		o.BackoffMin, o.BackoffMax = 50*time.Millisecond, 200*time.Millisecond
	}
	m.GatewayTuning = func(g *gateway.Config) { g.TerminalWait, g.RetryInterval = 5*time.Second, 200*time.Millisecond }
	for _, f := range tune {
		f(m)
	}
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("start sterad: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	d := &testDaemon{t: t, m: m, c: api.NewClient(m.APIAddr, m.Token), log: logs}
	d.waitFor("acquirer online and terminals ready", func() bool {
		st, err := d.c.Status(context.Background())
		if err != nil || !st.Acquirer.Online {
			return false
		}
		for _, term := range st.Terminals {
			if term.State != sterad.TerminalReady {
				return false
			}
		}
		return true
	})
	return d
}

// waitFor polls cond until it holds or 10 s pass.
func (d *testDaemon) waitFor(what string, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (d *testDaemon) card(term string, c terminal.Card) {
	d.t.Helper()
	if err := d.m.SimTerminals[term].PushCard(c); err != nil {
		d.t.Fatal(err)
	}
}

func (d *testDaemon) post(r api.TransactionRequest) *api.Transaction {
	d.t.Helper()
	tx, _, err := d.c.CreateTransaction(context.Background(), r, api.CreateOptions{})
	if err != nil {
		d.t.Fatalf("%s: %v", r.Op, err)
	}
	return tx
}

func (d *testDaemon) postErr(r api.TransactionRequest) *api.Error {
	d.t.Helper()
	_, _, err := d.c.CreateTransaction(context.Background(), r, api.CreateOptions{})
	var ae *api.Error
	if !errors.As(err, &ae) {
		d.t.Fatalf("%s: want an API error, got %v", r.Op, err)
	}
	return ae
}

func (d *testDaemon) count() int {
	d.t.Helper()
	txns, err := d.c.Transactions(context.Background(), nil)
	if err != nil {
		d.t.Fatal(err)
	}
	return len(txns)
}

func stay() *api.StayInput {
	in := time.Now()
	return &api.StayInput{CheckIn: in.Format(time.DateOnly), CheckOut: in.AddDate(0, 0, 2).Format(time.DateOnly)}
}

func expiry() string { return time.Now().AddDate(2, 0, 0).Format("0601") }

// A guest's stay on the fixed terminal, end to end.
func TestGuestStay(t *testing.T) {
	d := startDaemon(t, clearMode)
	d.card("FRONT001", terminal.Card{PAN: "4111111111111111", Entry: "chip"})
	pre := d.post(api.TransactionRequest{Op: "preauth", Terminal: "FRONT001", Amount: "30000", Reference: "RSV-20261121-0042", Stay: stay()})
	if pre.Status != "approved" || pre.AuthCode == "" || pre.RRN == "" || pre.TI == "" || pre.MaskedPAN != "411111******1111" || pre.Entry != "chip" {
		t.Fatalf("pre-authorization: %+v", pre)
	}
	// The host saw a pre-authorization with the stay and the reference.
	auths := d.m.SimHost.Ledger().Authorizations
	if len(auths) != 1 {
		t.Fatalf("host authorizations: %+v", auths)
	}
	// The terminal showed and printed the approval.
	slips := d.m.SimTerminals["FRONT001"].Slips()
	if len(slips) != 1 || slips[0].Status != "approved" || slips[0].AuthCode != pre.AuthCode || slips[0].TxnID != pre.ID {
		t.Fatalf("slips: %+v", slips)
	}

	inc := d.post(api.TransactionRequest{Op: "incremental", Original: pre.ID, Amount: "15000"})
	if inc.Status != "approved" {
		t.Fatalf("incremental: %+v", inc)
	}
	ae := d.postErr(api.TransactionRequest{Op: "completion", Original: pre.ID, Amount: "51751"}) // 45000 × 1.15 = 51750
	if ae.Status != 409 || !strings.Contains(ae.Message, "add an incremental authorization first") {
		t.Fatalf("completion over the tolerance: %v", ae)
	}
	comp := d.post(api.TransactionRequest{Op: "completion", Original: pre.ID, Amount: "51750"})
	if comp.Status != "approved" || comp.Batch == nil || *comp.Batch != "000001" {
		t.Fatalf("completion: %+v", comp)
	}

	d.card("FRONT001", terminal.Card{PAN: "5555555555554444", Entry: "ctls"})
	sale := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "4500", Reference: "FOLIO-7"})
	if sale.Status != "approved" || sale.Brand != "mastercard" || sale.Entry != "ctls" {
		t.Fatalf("sale: %+v", sale)
	}
	if r := d.post(api.TransactionRequest{Op: "refund", Original: sale.ID, Amount: "1000"}); r.Status != "approved" {
		t.Fatalf("refund: %+v", r)
	}
	if ae := d.postErr(api.TransactionRequest{Op: "refund", Original: sale.ID, Amount: "3501"}); ae.Status != 409 {
		t.Fatalf("refund over what is left: %v", ae)
	}
	if r := d.post(api.TransactionRequest{Op: "refund", Original: sale.ID, Amount: "3500"}); r.Status != "approved" {
		t.Fatalf("refund of the rest: %+v", r)
	}

	d.card("FRONT001", terminal.Card{PAN: "3530111333300000", Entry: "swipe"})
	toVoid := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "2000"})
	void := d.post(api.TransactionRequest{Op: "void", Original: toVoid.ID})
	if void.Status != "approved" {
		t.Fatalf("void: %+v", void)
	}
	if got, _ := d.c.Transaction(context.Background(), toVoid.ID); got.Status != "voided" {
		t.Fatalf("voided sale is %s", got.Status)
	}
	if ae := d.postErr(api.TransactionRequest{Op: "void", Original: toVoid.ID}); ae.Status != 409 {
		t.Fatalf("second void: %v", ae)
	}

	// The books agree with the host's ledger.
	host := d.m.SimHost.Ledger().Totals.Minor()
	want := sterad.Totals{DebitCount: 2, DebitAmount: 51750 + 4500, CreditCount: 2, CreditAmount: 4500}
	if host != want {
		t.Fatalf("host totals %+v, want %+v", host, want)
	}
	// Card data never reached the log.
	if logs := d.log.String(); strings.Contains(logs, "4111111111111111") || strings.Contains(logs, "5555555555554444") || strings.Contains(logs, "3530111333300000") {
		t.Fatal("a card number appears in the daemon's log")
	}
}

// Every test-host decline code reaches the clerk as a clear reason, and the
// terminal shows it.
func TestDeclinePaths(t *testing.T) {
	d := startDaemon(t, clearMode)
	for _, c := range []struct{ pan, code, reason string }{
		{"4000000000000002", "05", "do not honor"},
		{"4000000000009995", "51", "insufficient funds"},
		{"4000000000000069", "54", "expired card"},
		{"4111111111111112", "14", "invalid card number"}, // Luhn fails: the terminal read it, the host refuses it
	} {
		d.card("FRONT001", terminal.Card{PAN: sterad.PAN(c.pan), Entry: "chip"})
		tx := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "8000"})
		if tx.Status != "declined" || !strings.Contains(tx.Reason, c.reason) {
			t.Errorf("card %s: %s %s %q", sterad.MaskPAN(c.pan), tx.Status, tx.ResponseCode, tx.Reason)
		}
		slips := d.m.SimTerminals["FRONT001"].Slips()
		last := slips[len(slips)-1]
		if last.TxnID != tx.ID || last.Status != "declined" {
			t.Errorf("card %s: terminal slip %+v", sterad.MaskPAN(c.pan), last)
		}
	}
	// Keyed cards: ¥10,000,000 is refused before anything is sent, the
	// rest are the host's answers.
	for _, c := range []struct{ pan, status string }{
		{"4000000000000119", "reversed"}, // no response: reversed, never resent
		{"4000000000000226", "reversed"}, // 96: reversed
	} {
		tx := d.post(api.TransactionRequest{Op: "sale", Amount: "7000", Card: &api.CardInput{PAN: sterad.PAN(c.pan), Expiry: expiry()}})
		if tx.Status != c.status || !strings.Contains(tx.Reason, "not charged") {
			t.Errorf("card %s: %s %q", sterad.MaskPAN(c.pan), tx.Status, tx.Reason)
		}
	}
	if n := d.m.SimHost.Ledger().Totals.Minor(); n.DebitCount != 0 {
		t.Fatalf("the host charged %d transactions", n.DebitCount)
	}
	st := d.m.SimHost.Stats()
	if st.Requests["0420"] < 2 {
		t.Fatalf("reversals sent: %v", st.Requests)
	}
}

func TestCancelAndBusy(t *testing.T) {
	d := startDaemon(t, clearMode)
	d.card("FRONT001", terminal.Card{Action: terminal.ActionCancel})
	if tx := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "3000"}); tx.Status != "cancelled" {
		t.Fatalf("customer cancel: %+v", tx)
	}
	d.card("FRONT001", terminal.Card{PAN: "4111111111111111", DelayMS: 800})
	first, code, err := d.c.CreateTransaction(context.Background(), api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "1000"}, api.CreateOptions{NoWait: true})
	if err != nil || code != 202 || first.Status != "pending" {
		t.Fatalf("first: %d %v %+v", code, err, first)
	}
	if ae := d.postErr(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "2000"}); ae.Status != 409 || ae.Code != "terminal_busy" {
		t.Fatalf("second: %v", ae)
	}
	// The other terminal is free.
	d.card("HAND0001", terminal.Card{PAN: "5555555555554444", Entry: "ctls"})
	if tx := d.post(api.TransactionRequest{Op: "sale", Terminal: "HAND0001", Amount: "500"}); tx.Status != "approved" {
		t.Fatalf("handheld: %+v", tx)
	}
	final, err := d.c.WaitFinal(context.Background(), first.ID, 20*time.Millisecond)
	if err != nil || final.Status != "approved" {
		t.Fatalf("first: %v %+v", err, final)
	}
}

func TestIdempotencyKey(t *testing.T) {
	d := startDaemon(t, clearMode)
	body := api.TransactionRequest{Op: "sale", Amount: "9800", Card: &api.CardInput{PAN: "4111111111111111", Expiry: expiry()}}
	o := api.CreateOptions{IdempotencyKey: "folio-1234-charge-1"}
	first, code, err := d.c.CreateTransaction(context.Background(), body, o)
	if err != nil || code != 201 {
		t.Fatalf("first: %d %v", code, err)
	}
	again, code, err := d.c.CreateTransaction(context.Background(), body, o)
	if err != nil || code != 200 || again.ID != first.ID {
		t.Fatalf("replay: %d %v %+v", code, err, again)
	}
	if n := d.m.SimHost.Stats().Requests["0200"]; n != 1 {
		t.Fatalf("the host saw %d sales", n)
	}
	body.Amount = "9801"
	_, code, err = d.c.CreateTransaction(context.Background(), body, o)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != 409 || ae.Code != "idempotency_key_reused" {
		t.Fatalf("other body: %d %v", code, err)
	}
}

// Bad input gets a clear error and changes nothing.
func TestBadInput(t *testing.T) {
	d := startDaemon(t, clearMode)
	d.card("FRONT001", terminal.Card{PAN: "4111111111111111"})
	sale := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "1000"})
	declined := d.post(api.TransactionRequest{Op: "sale", Amount: "1000", Card: &api.CardInput{PAN: "4000000000000002", Expiry: expiry()}})
	before, hostBefore, slipsBefore := d.count(), d.m.SimHost.Stats().Responses, len(d.m.SimTerminals["FRONT001"].Slips())

	raw := func(body, token string) (int, api.ErrorBody) {
		req, _ := http.NewRequest("POST", "http://"+d.m.APIAddr+"/v1/transactions", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var eb api.ErrorBody
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &eb); err != nil {
			t.Fatalf("error body %q: %v", b, err)
		}
		return resp.StatusCode, eb
	}
	tok := d.m.Token
	key := `"card":{"pan":"4111111111111111","expiry":"` + expiry() + `"}`
	tests := []struct {
		name, body, token string
		status            int
		code              string
	}{
		{"no token", `{"op":"sale"}`, "", 401, "unauthorized"},
		{"wrong token", `{"op":"sale"}`, "nope", 401, "unauthorized"},
		{"malformed JSON", `{"op":"sale",`, tok, 400, "malformed_json"},
		{"not an object", `[1,2]`, tok, 400, "malformed_json"},
		{"unknown field", `{"op":"sale","amout":"100"}`, tok, 400, "malformed_json"},
		{"two objects", `{"op":"sale"}{"op":"sale"}`, tok, 400, "malformed_json"},
		{"unknown op", `{"op":"charge","amount":"100",` + key + `}`, tok, 400, "unknown_op"},
		{"unknown terminal", `{"op":"sale","terminal":"FRONT999","amount":"100"}`, tok, 404, "unknown_terminal"},
		{"negative", `{"op":"sale","amount":"-100",` + key + `}`, tok, 400, "invalid_amount"},
		{"zero", `{"op":"sale","amount":"0",` + key + `}`, tok, 400, "invalid_amount"},
		{"fractional yen", `{"op":"sale","amount":"100.5",` + key + `}`, tok, 400, "invalid_amount"},
		{"number amount fractional", `{"op":"sale","amount":100.5,` + key + `}`, tok, 400, "invalid_amount"},
		{"ten million", `{"op":"sale","amount":"10000000",` + key + `}`, tok, 400, "invalid_amount"},
		{"luhn", `{"op":"sale","amount":"100","card":{"pan":"4111111111111112","expiry":"2812"}}`, tok, 400, "invalid_card"},
		{"expired", `{"op":"sale","amount":"100","card":{"pan":"4111111111111111","expiry":"2001"}}`, tok, 400, "expired_card"},
		{"malformed expiry", `{"op":"sale","amount":"100","card":{"pan":"4111111111111111","expiry":"12/28"}}`, tok, 400, "invalid_expiry"},
		{"completion of unknown", `{"op":"completion","original":"NOPE","amount":"100"}`, tok, 404, "unknown_original"},
		{"completion of a sale", `{"op":"completion","original":"` + sale.ID + `","amount":"100"}`, tok, 409, "wrong_original"},
		{"refund of declined", `{"op":"refund","original":"` + declined.ID + `","amount":"100"}`, tok, 409, "wrong_state"},
		{"void of declined", `{"op":"void","original":"` + declined.ID + `"}`, tok, 409, "wrong_state"},
		{"void of unknown", `{"op":"void","original":"NOPE"}`, tok, 404, "unknown_original"},
	}
	for _, tt := range tests {
		status, eb := raw(tt.body, tt.token)
		if status != tt.status || eb.Error.Code != tt.code || eb.Error.Message == "" {
			t.Errorf("%s: %d %+v, want %d %s", tt.name, status, eb.Error, tt.status, tt.code)
		}
		if strings.Contains(eb.Error.Message, "4111111111111111") {
			t.Errorf("%s: the error shows the card number", tt.name)
		}
	}
	if after := d.count(); after != before {
		t.Fatalf("bad input stored %d transactions", after-before)
	}
	if d.m.SimHost.Stats().Responses != hostBefore || len(d.m.SimTerminals["FRONT001"].Slips()) != slipsBefore {
		t.Fatal("bad input reached the acquirer or the terminal")
	}
	// Search filters are checked too.
	if _, err := d.c.Transactions(context.Background(), url.Values{"date": {"2026-13-01"}}); err == nil {
		t.Fatal("a bad date filter was accepted")
	}
}

// The link-layer failure cases of terminal-link.md §3, injected by the
// terminal simulator during sales: the sale still completes correctly.
func TestTerminalLinkFaults(t *testing.T) {
	d := startDaemon(t, clearMode)
	sim := d.m.SimTerminals["FRONT001"]
	for _, fault := range []string{"drop_ack", "bad_crc", "garbage", "truncate"} {
		t.Run(fault, func(t *testing.T) {
			before := sim.State().Link
			if err := sim.Fault(fault, 1, 0); err != nil {
				t.Fatal(err)
			}
			d.card("FRONT001", terminal.Card{PAN: "4111111111111111"})
			tx := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "1200"})
			if tx.Status != "approved" || tx.TerminalResult != "done" {
				t.Fatalf("sale with %s: %+v", fault, tx)
			}
			after := sim.State().Link
			switch fault {
			case "drop_ack": // our ACK was lost: the gateway resent, the terminal saw a duplicate
				if after.Duplicates == before.Duplicates {
					t.Fatalf("no duplicate at the terminal: %+v", after)
				}
			case "bad_crc", "truncate": // the gateway NAKed, the terminal resent
				if after.NAKsReceived == before.NAKsReceived || after.Retransmits == before.Retransmits {
					t.Fatalf("no NAK/retransmission: %+v", after)
				}
			}
		})
	}
	// The gateway answered garbage with nothing: noise is skipped silently.
	if strings.Contains(d.log.String(), "panic") {
		t.Fatal("panic in the log")
	}
}

// A silent or unplugged terminal goes offline quickly, requests for it get
// 503 at once, and it is ready again without a restart.
func TestTerminalOfflineAndBack(t *testing.T) {
	d := startDaemon(t, clearMode)
	sim := d.m.SimTerminals["FRONT001"]
	state := func() string {
		for _, term := range d.m.Gateway.Terminals() {
			if term.ID == "FRONT001" {
				return term.State
			}
		}
		return ""
	}
	for _, fault := range []struct {
		kind string
		ms   int
	}{{"silence", 2000}, {"unplug", 1500}, {"reboot", 500}} {
		boot := sim.BootID()
		if err := sim.Fault(fault.kind, 1, fault.ms); err != nil {
			t.Fatal(err)
		}
		d.waitFor(fault.kind+": terminal offline", func() bool { return state() == sterad.TerminalOffline })
		start := time.Now()
		ae := d.postErr(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "100"})
		if ae.Status != 503 || time.Since(start) > time.Second {
			t.Fatalf("%s: request while offline: %v after %s", fault.kind, ae, time.Since(start))
		}
		d.waitFor(fault.kind+": terminal ready again", func() bool { return state() == sterad.TerminalReady })
		if info := d.m.Sessions["FRONT001"].Info(); (info.BootID != boot) != (fault.kind == "reboot") {
			t.Fatalf("%s: boot id %s → %s", fault.kind, boot, info.BootID)
		}
		d.card("FRONT001", terminal.Card{PAN: "4111111111111111"})
		if tx := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "100"}); tx.Status != "approved" {
			t.Fatalf("%s: sale after the terminal came back: %+v", fault.kind, tx)
		}
	}
}

// The terminal is unplugged while the customer holds the card: the
// transaction is reconciled with STATUS_QUERY when it is back, and nothing
// is charged twice.
func TestUnplugMidTransaction(t *testing.T) {
	d := startDaemon(t, clearMode)
	sim := d.m.SimTerminals["FRONT001"]
	d.card("FRONT001", terminal.Card{PAN: "4111111111111111", DelayMS: 1000})
	tx, _, err := d.c.CreateTransaction(context.Background(), api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "2500"}, api.CreateOptions{NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	d.waitFor("terminal waiting for the card", func() bool { return sim.State().State == terminal.StateWaitingCard })
	if err := sim.Fault("unplug", 1, 300); err != nil {
		t.Fatal(err)
	}
	final, err := d.c.WaitFinal(context.Background(), tx.ID, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// However the terminal's state came back, the host charged at most
	// once and sterad's status agrees with the host's ledger.
	charged := 0
	for _, e := range d.m.SimHost.Ledger().Approved {
		if e.Amount.Minor() == 2500 {
			charged++
		}
	}
	if (final.Status == "approved") != (charged == 1) || charged > 1 {
		t.Fatalf("final %s (%q), host charged %d times", final.Status, final.Reason, charged)
	}
	// The card had not been presented yet: the terminal answers
	// waiting_card, so the gateway cancels and nothing is charged.
	if final.Status != "cancelled" || charged != 0 || !strings.Contains(final.Reason, "nothing was charged") {
		t.Fatalf("after the unplug: %s (%q)", final.Status, final.Reason)
	}
}

func TestConfigValidation(t *testing.T) {
	base := DefaultConfig()
	base.DataDir = t.TempDir()
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"cutoff", func(c *Config) { c.Settlement.Cutoff = "25:00" }, "settlement.cutoff"},
		{"timezone", func(c *Config) { c.Settlement.Timezone = "Mars/Olympus" }, "settlement.timezone"},
		{"brand", func(c *Config) { c.Settlement.FeeRates["discover"] = "3.0" }, "unknown brand"},
		{"kind", func(c *Config) { c.Terminals = []TerminalConfig{{ID: "T1", Kind: "kiosk", Port: "/dev/ttyS0"}} }, "unknown kind"},
		{"same port", func(c *Config) {
			c.Terminals = []TerminalConfig{{ID: "T1", Kind: "fixed", Port: "/dev/ttyS0"}, {ID: "T2", Kind: "fixed", Port: "/dev/ttyS0"}}
		}, "already used"},
		{"baud", func(c *Config) {
			c.Terminals = []TerminalConfig{{ID: "T1", Kind: "fixed", Port: "/dev/ttyS0", Baud: 1234}}
		}, "baud"},
		{"merchant", func(c *Config) { c.MerchantID = strings.Repeat("M", 16) }, "merchant_id"},
		{"same usb", func(c *Config) {
			c.Terminals = []TerminalConfig{{ID: "H1", Kind: "handheld", USB: &USBConfig{VID: "0x1234", PID: "0x5678"}}, {ID: "H2", Kind: "handheld", USB: &USBConfig{VID: "1234", PID: "5678", Serial: "B"}}}
		}, "give each its serial number"},
		{"bad usb id", func(c *Config) {
			c.Terminals = []TerminalConfig{{ID: "H1", Kind: "handheld", USB: &USBConfig{VID: "0xZZZZ", PID: "1"}}}
		}, "usb"},
		{"port and usb", func(c *Config) {
			c.Terminals = []TerminalConfig{{ID: "H1", Kind: "handheld", Port: "/dev/ttyACM0", USB: &USBConfig{VID: "1", PID: "2"}}}
		}, "exactly one of port or usb"},
	}
	for _, tt := range tests {
		c := base
		c.Settlement.FeeRates = map[string]string{"visa": "2.58"}
		tt.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	_, err := LoadConfig(writeFile(t, "merchant_id: X\nmerchnt: typo\n"))
	if err == nil || !strings.Contains(err.Error(), "merchnt") {
		t.Fatalf("unknown key: %v", err)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := t.TempDir() + "/sterad.yaml"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The example configuration in testdata is valid.
func TestExampleConfig(t *testing.T) {
	cfg, err := LoadConfig("../../testdata/sterad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the example configuration is invalid:\n%v", err)
	}
	if len(cfg.Terminals) != 3 || cfg.Terminals[1].USB == nil || cfg.Acquirer.Timeout.D() != 15*time.Second {
		t.Fatalf("example: %+v", cfg)
	}
}

// clearMode runs the daemon with card_data: clear: keyed cards through the
// API, terminals that send the card in clear (today's behaviour, for a
// gateway that is itself assessed).
func clearMode(m *Main) { m.Config.CardData = sterad.CardDataClear }
