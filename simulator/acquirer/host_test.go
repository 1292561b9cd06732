package acquirer_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/sterad/sterad/internal/testutil"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/acquirer"
)

// TestScreening runs every row of docs/acquirer-protocol.md §7 that answers.
func TestScreening(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dialSignedOn(t, h, clock)
	tests := []struct {
		name   string
		op     string // sale, preauth, cardcheck
		pan    sterad.PAN
		exp    string
		amount int64
		want   string
	}{
		{"visa", "sale", "4111111111111111", validExp, 12800, "00"},
		{"mastercard", "sale", "5555555555554444", validExp, 12800, "00"},
		{"jcb", "sale", "3530111333300000", validExp, 12800, "00"},
		{"amex", "sale", "378282246310005", validExp, 12800, "00"},
		{"diners", "sale", "30569309025904", validExp, 12800, "00"},
		{"unionpay", "sale", "6250947000000014", validExp, 12800, "00"},
		{"luhn failure", "sale", "4111111111111112", validExp, 12800, "14"},
		{"do not honor", "sale", "4000000000000002", validExp, 12800, "05"},
		{"insufficient funds", "sale", "4000000000009995", validExp, 12800, "51"},
		{"expired card number", "sale", "4000000000000069", validExp, 12800, "54"},
		{"DE 14 in the past", "sale", visa, pastExp, 12800, "54"},
		{"DE 14 this month", "sale", visa, "2611", 12800, "00"},
		{"malfunction", "sale", "4000000000000226", validExp, 12800, "96"},
		{"amount 10,000,000", "sale", visa, validExp, 10_000_000, "13"},
		{"amount 9,999,999", "sale", visa, validExp, 9_999_999, "00"},
		{"pre-auth approved", "preauth", visa, validExp, 30000, "00"},
		{"pre-auth do not honor", "preauth", "4000000000000002", validExp, 30000, "05"},
		{"pre-auth amount too large", "preauth", visa, validExp, 10_000_000, "13"},
		{"card check valid", "cardcheck", visa, validExp, 0, "85"},
		{"card check insufficient funds", "cardcheck", "4000000000009995", validExp, 0, "51"},
		{"card check expired", "cardcheck", visa, pastExp, 0, "54"},
	}
	rrns, tis := map[string]bool{}, map[string]bool{}
	approved := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req *sterad.HostMessage
			switch tt.op {
			case "sale":
				req = c.sale(tt.pan, tt.exp, tt.amount)
			case "preauth":
				req = c.preauth(tt.pan, tt.exp, tt.amount)
			case "cardcheck":
				req = c.cardCheck(tt.pan, tt.exp, false)
			}
			r := c.exchange(req)
			wantCode(t, tt.name, r, tt.want)
			if r.MTI != req.MTI.Response() || r.STAN != req.STAN || r.TerminalID != req.TerminalID ||
				r.Processing != req.Processing || !r.Transmitted.Equal(req.Transmitted) || r.Amount.Cmp(req.Amount) != 0 {
				t.Errorf("response does not echo the request: %+v", r)
			}
			if !r.Approved() {
				if r.RRN != "" || r.TI != "" {
					t.Errorf("decline carries RRN %q TI %q", r.RRN, r.TI)
				}
				return
			}
			if len(r.RRN) != 12 || len(r.AuthCode) != 6 {
				t.Errorf("RRN %q, auth code %q: want 12 and 6 characters", r.RRN, r.AuthCode)
			}
			if rrns[r.RRN] {
				t.Errorf("RRN %s reused", r.RRN)
			}
			rrns[r.RRN] = true
			if tt.op == "cardcheck" {
				return
			}
			if len(r.TI) != 15 || tis[r.TI] {
				t.Errorf("TI %q: want 15 characters, unique", r.TI)
			}
			tis[r.TI] = true
			if tt.op == "sale" {
				approved++
			}
		})
	}
	l := h.Ledger()
	if len(l.Approved) != approved || len(l.Transactions) != approved {
		t.Errorf("ledger has %d transactions, %d approved; want %d approved sales only", len(l.Transactions), len(l.Approved), approved)
	}
	b, _ := json.Marshal(l)
	for _, tt := range tests {
		if bytes.Contains(b, []byte(tt.pan)) {
			t.Errorf("ledger JSON contains the full card number of %q", tt.name)
		}
	}
}

// TestNoResponseCard: the host never answers 4000000000000119, then
// acknowledges its reversal, and charges nothing.
func TestNoResponseCard(t *testing.T) {
	const silent = sterad.PAN("4000000000000119")
	tests := []struct {
		name string
		req  func(c *client) *sterad.HostMessage
	}{
		{"sale", func(c *client) *sterad.HostMessage { return c.sale(silent, validExp, 5000) }},
		{"pre-auth", func(c *client) *sterad.HostMessage { return c.preauth(silent, validExp, 5000) }},
		{"card check", func(c *client) *sterad.HostMessage { return c.cardCheck(silent, validExp, true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, clock := startHost(t, acquirer.Options{})
			c := dialSignedOn(t, h, clock)
			req := tt.req(c)
			c.send(req)
			c.expectNone(req)
			// The same request again is not answered either.
			c.send(req)
			c.expectNone(req)
			wantCode(t, "reversal", c.exchange(c.reversal(req)), "00")
			l := h.Ledger()
			if len(l.Transactions) != 0 || len(l.Authorizations) != 0 || l.Totals.DebitCount != 0 {
				t.Errorf("ledger shows something charged: %+v", l)
			}
			if s := h.Stats(); s.Dropped != 2 {
				t.Errorf("stats dropped = %d, want 2", s.Dropped)
			}
		})
	}
}

func TestSignOnRequired(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dial(t, h, clock)
	sale := c.sale(visa, validExp, 1000)
	steps := []struct {
		name string
		req  *sterad.HostMessage
		want string
	}{
		{"sale before sign-on", sale, "91"},
		{"echo before sign-on", c.network(sterad.NetEcho), "91"},
		{"sign-on", c.network(sterad.NetSignOn), "00"},
		{"echo", c.network(sterad.NetEcho), "00"},
		{"the same sale, now signed on", sale, "00"},
		{"sign-off", c.network(sterad.NetSignOff), "00"},
		{"sale after sign-off", c.sale(visa, validExp, 1000), "91"},
		{"unknown network code", c.network("999"), "30"},
	}
	for _, s := range steps {
		r := c.exchange(s.req)
		wantCode(t, s.name, r, s.want)
		if s.req.MTI == sterad.MTINetwork && r.NetworkCode != s.req.NetworkCode {
			t.Errorf("%s: DE 70 %q not echoed", s.name, r.NetworkCode)
		}
	}
	if n := len(h.Ledger().Approved); n != 1 {
		t.Errorf("ledger has %d approved, want 1", n)
	}
	// Sign-on is per connection.
	c2 := dial(t, h, clock)
	wantCode(t, "sale on a new connection", c2.exchange(c2.sale(visa, validExp, 1000)), "91")
}

func TestDuplicate(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dialSignedOn(t, h, clock)
	sale := c.sale(visa, validExp, 12800)
	first := c.exchange(sale)
	wantCode(t, "sale", first, "00")
	again := c.exchange(sale)
	if again.RRN != first.RRN || again.TI != first.TI || again.AuthCode != first.AuthCode || again.ResponseCode != first.ResponseCode {
		t.Errorf("duplicate answered %+v, want the original %+v", again, first)
	}
	// A duplicate on another connection is a duplicate too.
	c2 := dialSignedOn(t, h, clock)
	if r := c2.exchange(sale); r.RRN != first.RRN {
		t.Errorf("duplicate on another connection got RRN %s, want %s", r.RRN, first.RRN)
	}
	// The same DE 41, 11, 7 with another MTI is a gateway bug.
	other := *sale
	other.MTI, other.Condition, other.Stay, other.Reference = sterad.MTIAuthorization, sterad.CondPreauth, stay, "R"
	wantCode(t, "same key, other MTI", c.exchange(&other), "30")

	l := h.Ledger()
	if len(l.Approved) != 1 || l.Totals.DebitAmount.Cmp(yen(12800)) != 0 {
		t.Errorf("ledger counts %d approved for %s, want 1 for 12800", len(l.Approved), l.Totals.DebitAmount)
	}
	if s := h.Stats(); s.Duplicates != 2 || s.Requests["0200"] != 3 {
		t.Errorf("stats: %+v, want 2 duplicates of 3 0200s", s)
	}
	// A duplicate from yesterday is not one today.
	clock.Advance(24 * time.Hour)
	if r := c.exchange(sale); r.RRN == first.RRN {
		t.Error("a request repeated the next day was answered from the duplicate record")
	}
}

func TestRepeats(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dialSignedOn(t, h, clock)
	advice := c.standIn(visa, validExp, 8000)
	first := c.exchange(advice)
	wantCode(t, "advice", first, "00")

	repeat := *advice
	repeat.MTI = sterad.MTIAdviceRepeat
	if r := c.exchange(&repeat); r.RRN != first.RRN || r.MTI != sterad.MTIAdviceResponse {
		t.Errorf("0221 answered %s RRN %s, want 0230 RRN %s", r.MTI, r.RRN, first.RRN)
	}
	repeatLater := c.later(&repeat)
	if r := c.exchange(repeatLater); r.RRN != first.RRN || r.ResponseCode != "00" {
		t.Errorf("0221 with a later DE 7 answered %s RRN %s, want the original", r.ResponseCode, r.RRN)
	}
	if n := len(h.Ledger().Transactions); n != 1 {
		t.Fatalf("ledger has %d transactions after an advice and its repeats, want 1", n)
	}

	rev := c.reversal(advice)
	wantCode(t, "0420", c.exchange(rev), "00")
	revRepeat := *rev
	revRepeat.MTI = sterad.MTIReversalRepeat
	if r := c.exchange(&revRepeat); r.ResponseCode != "00" || r.MTI != sterad.MTIReversalResponse {
		t.Errorf("0421 answered %s %s, want 0430 00", r.MTI, r.ResponseCode)
	}
	l := h.Ledger()
	if len(l.Approved) != 0 || l.Transactions[0].Status != acquirer.StatusReversed {
		t.Errorf("after the reversal: %+v", l.Transactions)
	}

	// The next day, a repeat with the original DE 7 (the time of the
	// stand-in decision) is still answered like its original.
	clock.Advance(24 * time.Hour)
	if r := c.exchange(&repeat); r.RRN != first.RRN {
		t.Errorf("0221 the next day answered RRN %s, want the original %s", r.RRN, first.RRN)
	}
	if n := len(h.Ledger().Transactions); n != 1 {
		t.Errorf("ledger has %d transactions after a repeat the next day, want 1", n)
	}
}

func TestStandInDeclines(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dialSignedOn(t, h, clock)
	tests := []struct {
		name string
		pan  sterad.PAN
		exp  string
		want string
	}{
		{"do not honor", "4000000000000002", validExp, "05"},
		{"insufficient funds", "4000000000009995", validExp, "51"},
		{"expired", visa, pastExp, "54"},
		{"no-response card is answered 05", "4000000000000119", validExp, "05"},
		{"malfunction", "4000000000000226", validExp, "96"},
		{"luhn", "4111111111111112", validExp, "14"},
		{"accepted", visa, validExp, "00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.exchange(c.standIn(tt.pan, tt.exp, 7000))
			wantCode(t, tt.name, r, tt.want)
			l := h.Ledger()
			tx := l.Transactions[len(l.Transactions)-1]
			wantStatus := acquirer.StatusDeclinedAdvice
			if tt.want == "00" {
				wantStatus = acquirer.StatusApproved
			}
			if tx.Kind != acquirer.KindStandIn || tx.Status != wantStatus || tx.Counted != (tt.want == "00") || tx.AuthCode != "OFF001" {
				t.Errorf("ledger entry %+v, want standin %s", tx, wantStatus)
			}
		})
	}
	if l := h.Ledger(); len(l.Approved) != 1 {
		t.Errorf("%d approved, want only the accepted advice", len(l.Approved))
	}
}

func TestPreauthIncrementalCompletion(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dialSignedOn(t, h, clock)
	pre := c.preauth("5555555555554444", validExp, 30000)
	preResp := c.exchange(pre)
	wantCode(t, "pre-auth", preResp, "00")

	steps := []struct {
		name string
		req  func() *sterad.HostMessage
		want string
	}{
		{"incremental", func() *sterad.HostMessage { return c.incremental(preResp.TI, 5000) }, "00"},
		{"incremental with unknown TI", func() *sterad.HostMessage { return c.incremental("XXX999999999999", 5000) }, "12"},
		{"incremental too large", func() *sterad.HostMessage { return c.incremental(preResp.TI, 10_000_000) }, "13"},
		{"completion with unknown TI", func() *sterad.HostMessage {
			m := c.completion(pre, preResp, 33000)
			m.TI = "XXX999999999999"
			return m
		}, "12"},
		{"completion", func() *sterad.HostMessage { return c.completion(pre, preResp, 33000) }, "00"},
		{"second completion", func() *sterad.HostMessage { return c.completion(pre, preResp, 33000) }, "12"},
		{"incremental after completion", func() *sterad.HostMessage { return c.incremental(preResp.TI, 5000) }, "12"},
	}
	for _, s := range steps {
		r := c.exchange(s.req())
		wantCode(t, s.name, r, s.want)
		if s.want == "00" && r.TI != preResp.TI {
			t.Errorf("%s: TI %s, want the pre-auth's %s", s.name, r.TI, preResp.TI)
		}
	}
	l := h.Ledger()
	if len(l.Authorizations) != 2 {
		t.Fatalf("authorizations: %+v, want the pre-auth and one incremental", l.Authorizations)
	}
	if a := l.Authorizations[0]; a.Status != acquirer.StatusCompleted || a.Total.Cmp(yen(35000)) != 0 {
		t.Errorf("pre-auth %s total %s, want completed 35000", a.Status, a.Total)
	}
	if len(l.Approved) != 1 {
		t.Fatalf("approved: %+v, want one completion", l.Approved)
	}
	if tx := l.Approved[0]; tx.Kind != acquirer.KindCompletion || tx.Amount.Cmp(yen(33000)) != 0 || tx.MaskedPAN != "555555******4444" || tx.AuthCode != preResp.AuthCode {
		t.Errorf("completion entry %+v", tx)
	}
}

func TestVoid(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dialSignedOn(t, h, clock)

	sale := c.sale(visa, validExp, 4000)
	saleResp := c.exchange(sale)
	void := c.void(sale, saleResp)
	wantCode(t, "void", c.exchange(void), "00")
	if tx, _ := h.Ledger().Transaction(terminal, sale.STAN); tx.Status != acquirer.StatusVoided || tx.Counted {
		t.Errorf("voided sale: %+v", tx)
	}
	wantCode(t, "void again", c.exchange(c.later(void)), "00")

	// A reversal of the void reinstates the sale.
	wantCode(t, "reversal of the void", c.exchange(c.reversal(void)), "00")
	if tx, _ := h.Ledger().Transaction(terminal, sale.STAN); tx.Status != acquirer.StatusApproved {
		t.Errorf("sale after its void was reversed: %s, want approved", tx.Status)
	}
	wantCode(t, "void after reinstatement", c.exchange(c.void(sale, saleResp)), "00")

	// Found by RRN when DE 90 does not match.
	sale2 := c.sale(visa, validExp, 5000)
	sale2Resp := c.exchange(sale2)
	byRRN := c.void(sale2, sale2Resp)
	byRRN.Original.Transmitted = byRRN.Original.Transmitted.Add(-time.Hour)
	wantCode(t, "void by RRN", c.exchange(byRRN), "00")

	unknown := c.sale(visa, validExp, 6000)
	wantCode(t, "void of an unknown sale", c.exchange(c.void(unknown, &sterad.HostMessage{RRN: "000000000000", TI: "XXX999999999999"})), "12")

	sale3 := c.sale(visa, validExp, 7000)
	sale3Resp := c.exchange(sale3)
	wrongAmount := c.void(sale3, sale3Resp)
	wrongAmount.Amount = yen(7001)
	wantCode(t, "void with another amount", c.exchange(wrongAmount), "12")

	// After the batch closes, a void is refused.
	wantCode(t, "batch close", c.exchange(c.reconcile(terminal, 1, sterad.Totals{DebitCount: 1, DebitAmount: 7000}, false)), "00")
	wantCode(t, "void after batch close", c.exchange(c.void(sale3, sale3Resp)), "12")
	if tx, _ := h.Ledger().Transaction(terminal, sale3.STAN); tx.Status != acquirer.StatusApproved {
		t.Errorf("sale in the closed batch: %s, want approved", tx.Status)
	}
	wantCode(t, "sale into the closed batch", c.exchange(c.sale(visa, validExp, 1000)), "12")
}

func TestVoidPreauthAndCompletion(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dialSignedOn(t, h, clock)
	pre := c.preauth(visa, validExp, 20000)
	preResp := c.exchange(pre)
	comp := c.completion(pre, preResp, 18000)
	compResp := c.exchange(comp)
	wantCode(t, "completion", compResp, "00")
	wantCode(t, "void of the completion", c.exchange(c.void(comp, compResp)), "00")
	if a := h.Ledger().Authorizations[0]; a.Status != acquirer.StatusApproved {
		t.Errorf("pre-auth after its completion was voided: %s, want approved (live)", a.Status)
	}
	wantCode(t, "new completion", c.exchange(c.completion(pre, preResp, 19000)), "00")

	pre2 := c.preauth(visa, validExp, 20000)
	pre2Resp := c.exchange(pre2)
	wantCode(t, "void of a pre-auth", c.exchange(c.void(pre2, pre2Resp)), "00")
	wantCode(t, "completion of a voided pre-auth", c.exchange(c.completion(pre2, pre2Resp, 1000)), "12")

	l := h.Ledger()
	if len(l.Approved) != 1 || l.Approved[0].Amount.Cmp(yen(19000)) != 0 {
		t.Errorf("approved: %+v, want the second completion only", l.Approved)
	}
}

func TestReversal(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dialSignedOn(t, h, clock)
	unknown := c.sale(visa, validExp, 1000)
	wantCode(t, "reversal of an unknown sale", c.exchange(c.reversal(unknown)), "00")

	sale := c.sale(visa, validExp, 2000)
	c.exchange(sale)
	wantCode(t, "reversal", c.exchange(c.reversal(sale)), "00")
	pre := c.preauth(visa, validExp, 10000)
	preResp := c.exchange(pre)
	inc := c.incremental(preResp.TI, 3000)
	c.exchange(inc)
	wantCode(t, "reversal of the incremental", c.exchange(c.reversal(inc)), "00")

	l := h.Ledger()
	if len(l.Approved) != 0 || l.Transactions[0].Status != acquirer.StatusReversed {
		t.Errorf("transactions after reversal: %+v", l.Transactions)
	}
	if a := l.Authorizations[0]; a.Total.Cmp(yen(10000)) != 0 || a.Status != acquirer.StatusApproved {
		t.Errorf("pre-auth after its incremental was reversed: %s total %s, want approved 10000", a.Status, a.Total)
	}
	if l.Authorizations[1].Status != acquirer.StatusReversed {
		t.Errorf("incremental: %s, want reversed", l.Authorizations[1].Status)
	}
}

func TestRefund(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dialSignedOn(t, h, clock)
	saleResp := c.exchange(c.sale("3530111333300000", validExp, 9000))
	linked := c.exchange(c.refund("", "", 3000, saleResp.TI))
	wantCode(t, "linked refund", linked, "00")
	wantCode(t, "refund of an unknown TI", c.exchange(c.refund("", "", 3000, "XXX999999999999")), "12")
	wantCode(t, "refund with the card", c.exchange(c.refund(visa, validExp, 500, "")), "00")
	wantCode(t, "refund to a luhn failure", c.exchange(c.refund("4111111111111112", validExp, 500, "")), "14")

	l := h.Ledger()
	refunds := 0
	for _, tx := range l.Approved {
		if tx.Kind == acquirer.KindRefund {
			refunds++
		}
	}
	if refunds != 2 || l.Totals.CreditCount != 2 || l.Totals.CreditAmount.Cmp(yen(3500)) != 0 || l.Totals.Net != "C5500" {
		t.Errorf("totals %+v, want 2 credits of 3500 in all, net C5500", l.Totals)
	}
	if tx, _ := l.Transaction(terminal, linkedSTAN(l)); tx.MaskedPAN != "353011******0000" {
		t.Errorf("linked refund card %s, want the sale's", tx.MaskedPAN)
	}
}

func linkedSTAN(l acquirer.Ledger) sterad.STAN {
	for _, tx := range l.Transactions {
		if tx.Kind == acquirer.KindRefund {
			var n int
			for _, d := range tx.STAN {
				n = n*10 + int(d-'0')
			}
			return sterad.STAN(n)
		}
	}
	return 0
}

func TestCardCheckTokenNoShow(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dialSignedOn(t, h, clock)
	check := c.exchange(c.cardCheck("378282246310005", validExp, true))
	wantCode(t, "card check", check, "85")
	if len(check.Token) != 16 {
		t.Fatalf("token %q, want 16 characters", check.Token)
	}
	if plain := c.exchange(c.cardCheck(visa, validExp, false)); plain.Token != "" {
		t.Errorf("card check without TR=1 returned a token")
	}
	wantCode(t, "card check with an amount", c.exchange(func() *sterad.HostMessage {
		m := c.cardCheck(visa, validExp, false)
		m.Amount = yen(100)
		return m
	}()), "13")

	wantCode(t, "no-show by token", c.exchange(c.noShowToken(check.Token, 15000)), "00")
	wantCode(t, "no-show by unknown token", c.exchange(c.noShowToken("TKXXX00000000000", 15000)), "14")
	wantCode(t, "no-show by token, amount too large", c.exchange(c.noShowToken(check.Token, 10_000_000)), "13")

	l := h.Ledger()
	if len(l.Approved) != 1 {
		t.Fatalf("approved: %+v", l.Approved)
	}
	if tx := l.Approved[0]; tx.Kind != acquirer.KindNoShow || tx.MaskedPAN != "378282*****0005" || tx.Terminal != terminal2 {
		t.Errorf("no-show entry %+v", tx)
	}
}

func TestReconciliation(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dialSignedOn(t, h, clock)
	c.exchange(c.sale(visa, validExp, 10000))
	c.exchange(c.sale("5555555555554444", validExp, 2500))
	c.exchange(c.refund(visa, validExp, 1000, ""))
	reversed := c.sale(visa, validExp, 99999)
	c.exchange(reversed)
	c.exchange(c.reversal(reversed))
	declined := c.sale("4000000000000002", validExp, 500)
	c.exchange(declined)

	// Another terminal with one sale, for the upload path.
	c2 := dialSignedOn(t, h, clock)
	s2 := c2.sale(visa, validExp, 3000)
	s2.TerminalID = terminal2
	c2.exchange(s2)

	balanced := sterad.Totals{DebitCount: 2, DebitAmount: 12500, CreditCount: 1, CreditAmount: 1000}
	h.SetDisagree(true)
	wantCode(t, "0500 while disagreeing", c.exchange(c.reconcile(terminal, 1, balanced, false)), "95")
	h.SetDisagree(false)
	r := c.exchange(c.reconcile(terminal, 1, balanced, false))
	wantCode(t, "balanced 0500", r, "00")
	if r.MTI != sterad.MTIReconciliationResp {
		t.Errorf("0500 answered with MTI %s", r.MTI)
	}
	wantCode(t, "0500 again for the closed batch", c.exchange(c.reconcile(terminal, 1, balanced, false)), "00")

	wrong := sterad.Totals{DebitCount: 2, DebitAmount: 6000}
	wantCode(t, "unbalanced 0500", c2.exchange(c2.reconcile(terminal2, 1, wrong, false)), "95")
	tx, _ := h.Ledger().Transaction(terminal2, s2.STAN)
	wantCode(t, "0320", c2.exchange(c2.upload(terminal2, tx, visa, validExp)), "00")
	wantCode(t, "0500 BU=1", c2.exchange(c2.reconcile(terminal2, 1, sterad.Totals{DebitCount: 1, DebitAmount: 3000}, true)), "00")
	wantCode(t, "0320 after close", c2.exchange(c2.upload(terminal2, tx, visa, validExp)), "12")

	l := h.Ledger()
	b1, ok := l.Batch(terminal, 1)
	if !ok || b1.State != acquirer.BatchClosed || b1.Result != "00" || b1.ClosedAt == nil || b1.HostTotals.Minor() != balanced {
		t.Errorf("batch %s/1: %+v", terminal, b1)
	}
	b2, _ := l.Batch(terminal2, 1)
	if b2.State != acquirer.BatchClosed || b2.GatewayTotals == nil || b2.GatewayTotals.DebitAmount.Cmp(yen(3000)) != 0 ||
		b2.HostTotals.DebitAmount.Cmp(yen(3000)) != 0 || len(b2.Uploads) != 1 || !b2.Uploads[0].Matched || b2.Uploads[0].MaskedPAN != "411111******1111" {
		t.Errorf("batch %s/1: %+v", terminal2, b2)
	}
}

func TestRequiredFields(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dialSignedOn(t, h, clock)
	tests := []struct {
		name string
		req  func() *sterad.HostMessage
	}{
		{"pre-auth without LD", func() *sterad.HostMessage { m := c.preauth(visa, validExp, 1000); m.Stay = nil; return m }},
		{"pre-auth without RF", func() *sterad.HostMessage { m := c.preauth(visa, validExp, 1000); m.Reference = ""; return m }},
		{"sale without DE 60", func() *sterad.HostMessage { m := c.sale(visa, validExp, 1000); m.Batch = 0; return m }},
		{"sale without DE 14", func() *sterad.HostMessage { m := c.sale(visa, validExp, 1000); m.Expiry = sterad.Expiry{}; return m }},
		{"sale without a card", func() *sterad.HostMessage {
			m := c.sale(visa, validExp, 1000)
			m.PAN, m.Expiry = "", sterad.Expiry{}
			return m
		}},
		{"chip sale without DE 55", func() *sterad.HostMessage { m := c.sale(visa, validExp, 1000); m.Entry = sterad.EntryChip; return m }},
		{"sale without DE 4", func() *sterad.HostMessage { m := c.sale(visa, validExp, 1000); m.HasAmount = false; return m }},
		{"completion without DE 90", func() *sterad.HostMessage {
			m := c.completion(c.preauth(visa, validExp, 1), &sterad.HostMessage{AuthCode: "A", TI: "XXX999999999999"}, 1)
			m.Original = nil
			return m
		}},
		{"incremental without TI", func() *sterad.HostMessage { return c.incremental("", 100) }},
		{"void without RR", func() *sterad.HostMessage {
			m := c.void(c.sale(visa, validExp, 1), &sterad.HostMessage{RRN: "1", TI: "XXX999999999999"})
			m.ReversalReason = ""
			return m
		}},
		{"reversal without DE 90", func() *sterad.HostMessage { m := c.reversal(c.sale(visa, validExp, 1)); m.Original = nil; return m }},
		{"0500 without totals", func() *sterad.HostMessage {
			m := c.reconcile(terminal, 1, sterad.Totals{}, false)
			m.Totals = nil
			return m
		}},
		{"0320 without RRN", func() *sterad.HostMessage {
			return c.upload(terminal, acquirer.Transaction{Amount: yen(1), Batch: 1, AuthCode: "A"}, visa, validExp)
		}},
		{"authorization that is neither pre-auth nor card check", func() *sterad.HostMessage {
			m := c.preauth(visa, validExp, 1000)
			m.Condition = sterad.CondNormal
			return m
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req()
			r := c.exchange(req)
			wantCode(t, tt.name, r, "30")
			if r.STAN != req.STAN || r.TerminalID != req.TerminalID {
				t.Errorf("30 does not echo DE 11 and 41")
			}
		})
	}
	if l := h.Ledger(); len(l.Transactions)+len(l.Authorizations) != 0 {
		t.Errorf("format errors reached the ledger: %+v", l)
	}
	if s := h.Stats(); s.FormatErrors != int64(len(tests)) {
		t.Errorf("stats format errors = %d, want %d", s.FormatErrors, len(tests))
	}
}

// rawMessage packs fields as given, bypassing protocol.Pack's checks.
func rawMessage(t *testing.T, mti string, fields map[int]string) []byte {
	t.Helper()
	m := iso8583.NewMessage(protocol.Spec)
	m.MTI(mti)
	for de, v := range fields {
		if err := m.Field(de, v); err != nil {
			t.Fatal(err)
		}
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMalformedAndOversized(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dialSignedOn(t, h, clock)
	de7 := testStart.Format("0102150405")

	c.sendRaw([]byte("this is not an ISO 8583 message at all"))
	c.sendRaw(append(rawMessage(t, "0200", map[int]string{11: "000901", 41: terminal}), "trailing"...))
	big := make([]byte, 5000)
	for i := range big {
		big[i] = 'x'
	}
	c.sendRaw(big)
	c.sendRaw(rawMessage(t, "0200", map[int]string{3: "000000", 4: "0000000012AB", 7: de7, 11: "000902", 41: terminal, 60: "000001"}))

	r := c.await(&sterad.HostMessage{MTI: sterad.MTIFinancial, STAN: 902, TerminalID: terminal})
	wantCode(t, "bad DE 4", r, "30")
	if !r.Transmitted.Equal(testStart) || r.Processing != "000000" {
		t.Errorf("30 does not echo DE 3 and 7: %+v", r)
	}
	echo := c.network(sterad.NetEcho)
	wantCode(t, "echo after the garbage", c.exchange(echo), "00")
	c.expectNone(&sterad.HostMessage{MTI: sterad.MTIFinancial, STAN: 901, TerminalID: terminal})

	s := h.Stats()
	if s.Malformed != 2 || s.Oversized != 1 || s.FormatErrors != 1 {
		t.Errorf("stats %+v, want 2 malformed, 1 oversized, 1 format error", s)
	}
}

func TestOutage(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dialSignedOn(t, h, clock)
	addr := h.Addr()
	if err := h.SetOutage(true); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-c.in:
		if ok {
			t.Fatal("unexpected message during the outage")
		}
	case <-time.After(waitFor):
		t.Fatal("connection not closed by the outage")
	}
	if nc, err := net.Dial("tcp", addr); err == nil {
		nc.Close()
		t.Fatal("connection accepted during the outage")
	}
	if err := h.SetOutage(false); err != nil {
		t.Fatal(err)
	}
	if h.Addr() != addr {
		t.Errorf("address after the outage %s, want %s", h.Addr(), addr)
	}
	c2 := dialSignedOn(t, h, clock)
	wantCode(t, "sale after the outage", c2.exchange(c2.sale(visa, validExp, 100)), "00")
}

func TestDrop(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dialSignedOn(t, h, clock)
	h.Drop(1)
	sale := c.sale(visa, validExp, 4200)
	c.send(sale)
	c.expectNone(sale)
	if l := h.Ledger(); len(l.Approved) != 1 {
		t.Fatalf("a dropped sale must still be processed: %+v", l.Approved)
	}
	// The echo is not dropped; the resend gets the stored approval.
	wantCode(t, "resend of the dropped sale", c.exchange(sale), "00")

	h.Drop(1)
	sale2 := c.sale(visa, validExp, 4300)
	c.send(sale2)
	c.expectNone(sale2)
	wantCode(t, "reversal of the answer-lost sale", c.exchange(c.reversal(sale2)), "00")
	if l := h.Ledger(); len(l.Approved) != 1 || l.Transactions[1].Status != acquirer.StatusReversed {
		t.Errorf("after reversing the lost sale: %+v", l.Transactions)
	}
	if s := h.Stats(); s.Dropped != 2 {
		t.Errorf("dropped = %d, want 2", s.Dropped)
	}
}

func TestDelay(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	c := dialSignedOn(t, h, clock)
	const d = 200 * time.Millisecond
	h.SetDelay(d)
	a, b := c.sale(visa, validExp, 1), c.sale(visa, validExp, 2)
	start := time.Now()
	c.send(a)
	c.send(b)
	c.await(a)
	c.await(b)
	if el := time.Since(start); el < d {
		t.Errorf("answered after %s, want at least %s", el, d)
	}
	h.SetDelay(0)
	wantCode(t, "echo", c.exchange(c.network(sterad.NetEcho)), "00")
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	clock := sterad.NewFakeClock(testStart)
	h1 := acquirer.New(acquirer.Options{Clock: clock, DataDir: dir})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h1.Serve(ln) }()
	testutil.Eventually(t, "first host listening", func() bool { return h1.Addr() != "" })
	c := dialSignedOn(t, h1, clock)
	pre := c.preauth(visa, validExp, 30000)
	preResp := c.exchange(pre)
	sale := c.sale("5555555555554444", validExp, 12800)
	saleResp := c.exchange(sale)
	check := c.exchange(c.cardCheck("3530111333300000", validExp, true))
	voided := c.sale(visa, validExp, 100)
	c.exchange(c.void(voided, c.exchange(voided)))
	c.exchange(c.reconcile(terminal2, 1, sterad.Totals{}, false))
	before := h1.Ledger()
	if err := h1.Close(); err != nil {
		t.Fatal(err)
	}
	<-done

	journal, err := os.ReadFile(filepath.Join(dir, acquirer.JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, pan := range []string{"4111111111111111", "5555555555554444", "3530111333300000"} {
		if bytes.Contains(journal, []byte(pan)) {
			t.Errorf("journal contains a full card number")
		}
	}
	// A torn last line (killed mid-write) is ignored.
	f, err := os.OpenFile(filepath.Join(dir, acquirer.JournalFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":99,"txn":{"id":`)
	f.Close()

	h2, _ := startHost(t, acquirer.Options{Clock: clock, DataDir: dir})
	after := h2.Ledger()
	bj, _ := json.Marshal(before)
	aj, _ := json.Marshal(after)
	if !bytes.Equal(bj, aj) {
		t.Errorf("ledger after restart differs:\nbefore %s\nafter  %s", bj, aj)
	}
	c2 := dialSignedOn(t, h2, clock)
	if r := c2.exchange(sale); r.RRN != saleResp.RRN {
		t.Errorf("duplicate after restart got RRN %s, want %s", r.RRN, saleResp.RRN)
	}
	comp := c2.completion(pre, preResp, 28000)
	comp.STAN = 500
	compResp := c2.exchange(comp)
	wantCode(t, "completion after restart", compResp, "00")
	if compResp.RRN == saleResp.RRN || compResp.RRN == preResp.RRN {
		t.Error("RRN reissued after restart")
	}
	ns := c2.noShowToken(check.Token, 9000)
	ns.STAN, ns.Batch = 501, 2 // batch 1 of this terminal was closed above
	wantCode(t, "no-show by a token issued before the restart", c2.exchange(ns), "00")
	if l := h2.Ledger(); len(l.Approved) != 3 {
		t.Errorf("approved after restart: %d, want sale, completion, no-show", len(l.Approved))
	}
}

func TestConcurrentConnections(t *testing.T) {
	h, clock := startHost(t, acquirer.Options{})
	const conns, each = 4, 100
	var wg sync.WaitGroup
	clients := make([]*client, conns)
	for i := range clients {
		clients[i] = dialSignedOn(t, h, clock)
	}
	errs := make(chan string, conns*each)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reqs := make([]*sterad.HostMessage, each)
			for j := range reqs {
				reqs[j] = c.sale(visa, validExp, int64(j+1))
				reqs[j].TerminalID = "TERM000" + string(rune('1'+i))
				c.send(reqs[j])
			}
			for _, r := range reqs {
				if m, ok := c.awaitWithin(r, waitFor); !ok || m.ResponseCode != "00" {
					errs <- "sale not approved"
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if n := len(h.Ledger().Approved); n != conns*each {
		t.Errorf("%d approved, want %d", n, conns*each)
	}
}

func TestControlAPI(t *testing.T) {
	h, _ := startHost(t, acquirer.Options{})
	api := h.Handler()
	do := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return rec.Code, v
	}
	tests := []struct {
		method, path, body string
		status             int
		check              func(map[string]any) bool
	}{
		{"GET", "/healthz", "", 200, func(v map[string]any) bool { return v["status"] == "ok" }},
		{"POST", "/delay", `{"ms": 5}`, 200, func(v map[string]any) bool { return v["delay_ms"] == 5.0 }},
		{"POST", "/delay", `{"ms": -1}`, 400, nil},
		{"POST", "/delay", `{"millis": 5}`, 400, nil},
		{"POST", "/drop", `{"count": 3}`, 200, func(v map[string]any) bool { return v["drop"] == 3.0 }},
		{"POST", "/drop", `{"count": 0}`, 200, func(v map[string]any) bool { return v["drop"] == 0.0 }},
		{"POST", "/disagree", `{"on": true}`, 200, func(v map[string]any) bool { return v["disagree"] == true }},
		{"POST", "/disagree", `not json`, 400, nil},
		{"POST", "/outage", `{"on": true}`, 200, func(v map[string]any) bool { return v["outage"] == true }},
		{"POST", "/outage", `{}`, 400, nil},
		{"POST", "/outage", `{"on": false}`, 200, func(v map[string]any) bool { return v["outage"] == false }},
		{"GET", "/ledger", "", 200, func(v map[string]any) bool {
			_, t1 := v["transactions"].([]any)
			_, t2 := v["approved"].([]any)
			_, t3 := v["totals"].(map[string]any)
			return t1 && t2 && t3
		}},
		{"GET", "/stats", "", 200, func(v map[string]any) bool { _, ok := v["requests"]; return ok }},
	}
	for _, tt := range tests {
		status, v := do(tt.method, tt.path, tt.body)
		if status != tt.status {
			t.Errorf("%s %s %s: status %d, want %d (%v)", tt.method, tt.path, tt.body, status, tt.status, v)
			continue
		}
		if tt.status >= 400 {
			if e, ok := v["error"].(map[string]any); !ok || e["message"] == "" {
				t.Errorf("%s %s: error body %v", tt.method, tt.path, v)
			}
			continue
		}
		if tt.check != nil && !tt.check(v) {
			t.Errorf("%s %s %s: body %v", tt.method, tt.path, tt.body, v)
		}
	}
	if c := h.Controls(); c.DelayMS != 5 || !c.Disagree || c.Outage {
		t.Errorf("controls after the API calls: %+v", c)
	}
}

func TestServeAfterBadDataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h := acquirer.New(acquirer.Options{DataDir: filepath.Join(file, "sub")})
	defer h.Close()
	if err := h.ListenAndServe("127.0.0.1:0"); err == nil || errors.Is(err, acquirer.ErrClosed) {
		t.Errorf("ListenAndServe with an unusable data dir returned %v", err)
	} else if !strings.Contains(err.Error(), "data dir") {
		t.Errorf("error %q does not name the data dir", err)
	}
}
