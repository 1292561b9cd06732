package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/api/openapitest"
	"github.com/sterad/sterad/offline"
	"github.com/sterad/sterad/simulator/terminal"
)

// A hotel's day against the real daemon (serve --simulate, clear mode,
// with a cancellation policy and a voucher program), every request and
// answer passing through a transport that validates them against the
// OpenAPI document (api/openapi.json): the document must be true of what
// the daemon really says, on every route.
func TestE2EOpenAPIDay(t *testing.T) {
	d := startDaemon(t, clearMode, withRules)
	v := openapitest.New(t)
	d.c.HTTP = &http.Client{Timeout: time.Minute, Transport: v.Transport(t, nil)}
	anon := api.NewClient(d.m.APIAddr, "")
	anon.HTTP = &http.Client{Timeout: time.Minute, Transport: v.Transport(t, nil)}
	ctx := context.Background()

	// do sends a request; it fails the test unless the status is want.
	do := func(method, path string, header http.Header, body, out any, want int) {
		t.Helper()
		code, err := d.c.Do(ctx, method, path, header, body, out)
		if code != want {
			t.Fatalf("%s %s: %d %v, want %d", method, path, code, err, want)
		}
	}
	post := func(r api.TransactionRequest, o api.CreateOptions, want int) *api.Transaction {
		t.Helper()
		tx, code, err := d.c.CreateTransaction(ctx, r, o)
		if code != want || err != nil && want < 400 {
			t.Fatalf("%s: %d %v, want %d", r.Op, code, err, want)
		}
		return tx
	}
	wantErr := func(r api.TransactionRequest, status int, code string) {
		t.Helper()
		_, _, err := d.c.CreateTransaction(ctx, r, api.CreateOptions{})
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != status || ae.Code != code {
			t.Fatalf("%s: %v, want %d %s", r.Op, err, status, code)
		}
	}
	final := func(tx *api.Transaction, status string) {
		t.Helper()
		if tx.Status != status {
			t.Fatalf("%s %s: %s (%s), want %s", tx.Op, tx.ID, tx.Status, tx.Reason, status)
		}
	}

	// Morning: the daemon, its description and its terminals.
	do("GET", "/healthz", nil, nil, nil, 200)
	do("GET", "/healthz?strict", nil, nil, nil, 200)
	var doc bytes.Buffer
	do("GET", "/v1/openapi.json", nil, nil, &doc, 200)
	if !bytes.Equal(doc.Bytes(), api.OpenAPI()) {
		t.Fatal("GET /v1/openapi.json is not the embedded document")
	}
	do("GET", "/v1/status", nil, nil, nil, 200)
	do("GET", "/v1/terminals", nil, nil, nil, 200)
	do("GET", "/metrics", nil, nil, &bytes.Buffer{}, 200)
	if _, err := anon.Do(ctx, "GET", "/v1/status", nil, nil, nil); !isStatus(err, 401) {
		t.Fatalf("without the token: %v", err)
	}
	do("GET", "/v2/nothing", nil, nil, nil, 404)

	// Check-in: a pre-authorization at the front desk, more, and a check-out.
	st := &api.StayInput{CheckIn: jstDay(-1), CheckOut: jstDay(0)}
	d.card("FRONT001", terminal.Card{PAN: "4111111111111111"})
	pre := post(api.TransactionRequest{Op: "preauth", Terminal: "FRONT001", Amount: "20000", Reference: "RSV-DAY-1", Stay: st}, api.CreateOptions{}, 201)
	final(pre, "approved")
	final(post(api.TransactionRequest{Op: "incremental", Original: pre.ID, Amount: "5000"}, api.CreateOptions{}, 201), "approved")
	d.card("FRONT001", terminal.Card{PAN: "3530111333300000"})
	hold := post(api.TransactionRequest{Op: "preauth", Terminal: "FRONT001", Amount: "30000", Reference: "RSV-DAY-2", Stay: st}, api.CreateOptions{}, 201)
	final(hold, "approved")
	do("GET", "/v1/holds", nil, nil, nil, 200)
	do("GET", "/v1/holds?older_than=7d", nil, nil, nil, 200)
	var co api.CheckoutResult
	coBody := api.CheckoutRequest{Reference: "RSV-DAY-1", Original: pre.ID, Stay: st, Guests: 1, Booking: "direct", RoomPlan: "12800", Other: "3000",
		BathingTax: "150", Vouchers: []sterad.VoucherUse{{Program: "OITA2016", Number: "2000000001", HolderMatches: true}}}
	do("POST", "/v1/checkouts", http.Header{"Idempotency-Key": {"co-day-1"}}, coBody, &co, 201)
	if co.Transaction == nil || co.Transaction.Op != "completion" || co.CardAmount != "10950" {
		t.Fatalf("check-out: %+v", co)
	}
	do("POST", "/v1/checkouts", http.Header{"Idempotency-Key": {"co-day-1"}}, coBody, nil, 200)
	do("POST", "/v1/checkouts", nil, coBody, nil, 409)
	do("POST", "/v1/checkouts", nil, map[string]any{"reference": "RSV-DAY-2", "room_plan": "12800", "original": hold.ID, "tip": "1"}, nil, 400)

	// Sales, keyed and at a terminal; an idempotent replay; a refund and a void.
	keyedCard := &api.CardInput{PAN: "5555555555554444", Expiry: expiry()}
	sale := post(api.TransactionRequest{Op: "sale", Card: keyedCard, Amount: "8000", Reference: "FOLIO-7"}, api.CreateOptions{IdempotencyKey: "sale-7"}, 201)
	final(sale, "approved")
	if again := post(api.TransactionRequest{Op: "sale", Card: keyedCard, Amount: "8000", Reference: "FOLIO-7"}, api.CreateOptions{IdempotencyKey: "sale-7"}, 200); again.ID != sale.ID {
		t.Fatalf("replay: %+v", again)
	}
	final(post(api.TransactionRequest{Op: "refund", Original: sale.ID, Amount: "2000"}, api.CreateOptions{}, 201), "approved")
	d.card("HAND0001", terminal.Card{PAN: "4111111111111111", Entry: "ctls"})
	pending := post(api.TransactionRequest{Op: "sale", Terminal: "HAND0001", Amount: "1200", Reference: "BAR-3"}, api.CreateOptions{NoWait: true}, 202)
	bar, err := d.c.WaitFinal(ctx, pending.ID, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	final(bar, "approved")
	final(post(api.TransactionRequest{Op: "void", Original: bar.ID}, api.CreateOptions{}, 201), "approved")
	wantErr(api.TransactionRequest{Op: "void", Original: bar.ID}, 409, "already_voided")
	wantErr(api.TransactionRequest{Op: "sale", Card: keyedCard, Amount: "12.5"}, 400, "invalid_amount")
	wantErr(api.TransactionRequest{Op: "teleport"}, 400, "unknown_op")
	wantErr(api.TransactionRequest{Op: "refund", Original: "NOPE", Amount: "1"}, 404, "unknown_original")
	do("GET", "/v1/transactions/NOPE", nil, nil, nil, 404)

	// Reservations: guarantees, a deposit and its change, a cancellation
	// by the policy, a card released.
	cc := guaranteeAt(d, "RSV-DAY-3", jstDay(3))
	dep := post(api.TransactionRequest{Op: "deposit", Reference: "RSV-DAY-3", Amount: "10000", Token: *cc.Token}, api.CreateOptions{}, 201)
	final(dep, "approved")
	final(post(api.TransactionRequest{Op: "adjust", Original: dep.ID, Amount: "12000"}, api.CreateOptions{}, 201), "approved")
	do("GET", "/v1/reservations/RSV-DAY-3", nil, nil, nil, 200)
	cancel := post(api.TransactionRequest{Op: "cancellation", Reference: "RSV-DAY-3"}, api.CreateOptions{}, 201)
	final(cancel, "approved")
	if cancel.Amount != "3600" || cancel.PolicyRow != "7" || cancel.CardAmount != "0" || len(cancel.Linked) == 0 {
		t.Fatalf("cancellation three days before arrival: %+v", cancel) // 20% of 18000, paid by the deposits
	}
	wantErr(api.TransactionRequest{Op: "cancellation", Reference: "RSV-DAY-3"}, 409, "already_cancelled")
	guaranteeAt(d, "RSV-DAY-4", jstDay(10))
	do("GET", "/v1/vault", nil, nil, nil, 200)
	do("DELETE", "/v1/vault/RSV-DAY-4", nil, nil, nil, 200)
	do("DELETE", "/v1/vault/RSV-NONE", nil, nil, nil, 404)
	do("POST", "/v1/vault/purge", nil, nil, nil, 200)
	do("GET", "/v1/reservations/RSV-NONE", nil, nil, nil, 404)

	// The acquirer goes away: a stand-in, a deferred refund, the queue.
	do("POST", "/v1/sim/acquirer/outage", nil, map[string]bool{"on": true}, nil, 200)
	d.waitFor("acquirer offline", func() bool {
		st, err := d.c.Status(ctx)
		return err == nil && !st.Acquirer.Online
	})
	d.waitFor("healthz degraded", func() bool { // computed at most once a second
		code, _ := d.c.Do(ctx, "GET", "/healthz?strict", nil, nil, nil)
		return code == 503
	})
	d.card("FRONT001", terminal.Card{PAN: "5555555555554444", Entry: "ctls"})
	final(post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "3000"}, api.CreateOptions{}, 201), "stood_in")
	final(post(api.TransactionRequest{Op: "refund", Original: sale.ID, Amount: "1000"}, api.CreateOptions{}, 201), "pending")
	wantErr(api.TransactionRequest{Op: "cardcheck", Card: keyedCard}, 503, "acquirer_offline")
	do("GET", "/v1/queue", nil, nil, nil, 200)
	do("GET", "/v1/status", nil, nil, nil, 200)
	do("POST", "/v1/sim/acquirer/outage", nil, map[string]bool{"on": false}, nil, 200)
	d.waitFor("acquirer online", func() bool {
		st, err := d.c.Status(ctx)
		return err == nil && st.Acquirer.Online
	})
	do("POST", "/v1/queue/flush", nil, nil, nil, 200)
	d.waitFor("queue empty", func() bool {
		_, sum, err := d.c.Queue(ctx)
		return err == nil && sum.Depth == 0
	})

	// The simulators' other controls.
	for _, c := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"POST", "/v1/sim/acquirer/delay", map[string]int{"ms": 0}, 200},
		{"POST", "/v1/sim/acquirer/delay", map[string]int{"ms": -1}, 400},
		{"POST", "/v1/sim/acquirer/drop", map[string]int{"count": 0}, 200},
		{"POST", "/v1/sim/acquirer/disagree", map[string]bool{"on": false}, 200},
		{"GET", "/v1/sim/acquirer/controls", nil, 200},
		{"GET", "/v1/sim/acquirer/ledger", nil, 200},
		{"GET", "/v1/sim/acquirer/stats", nil, 200},
		{"GET", "/v1/sim/acquirer/healthz", nil, 200},
		{"POST", "/v1/sim/terminals/HAND0001/card", map[string]string{"pan": "4111111111111111", "entry": "chip"}, 200},
		{"POST", "/v1/sim/terminals/HAND0001/fault", map[string]any{"kind": "drop_ack", "count": 0}, 200},
		{"GET", "/v1/sim/terminals/HAND0001/state", nil, 200},
		{"GET", "/v1/sim/terminals/FRONT001/slips", nil, 200},
		{"GET", "/v1/sim/terminals/FRONT001/healthz", nil, 200},
		{"GET", "/v1/sim/terminals/NOPE0001/state", nil, 404},
	} {
		do(c.method, c.path, nil, c.body, nil, c.want)
	}
	snack := post(api.TransactionRequest{Op: "sale", Terminal: "HAND0001", Amount: "900"}, api.CreateOptions{}, 201)
	final(snack, "approved")

	// Searches.
	for _, q := range []url.Values{
		nil, {"reference": {"FOLIO-7"}}, {"status": {"approved"}, "op": {"sale"}, "limit": {"5"}},
		{"original": {sale.ID}}, {"date": {time.Now().UTC().Format(time.DateOnly)}}, {"batch": {"1"}},
	} {
		do("GET", "/v1/transactions?"+q.Encode(), nil, nil, nil, 200)
	}
	do("GET", "/v1/transactions?status=lost", nil, nil, nil, 400)
	do("GET", "/v1/transactions/"+url.PathEscape(cancel.ID), nil, nil, nil, 200)

	// Night audit: the batch closes (once at once, once waited for), the
	// reports.
	var accepted struct {
		Batch int `json:"batch"`
	}
	do("POST", "/v1/batches/close?wait=false", nil, nil, &accepted, 202)
	d.waitFor("batch closed", func() bool {
		var b api.BatchView
		_, err := d.c.Do(ctx, "GET", "/v1/batches/"+strconv.Itoa(accepted.Batch), nil, nil, &b)
		return err == nil && b.State == sterad.BatchClosed
	})
	d.card("FRONT001", terminal.Card{PAN: "4111111111111111"})
	final(post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "4400"}, api.CreateOptions{}, 201), "approved")
	do("POST", "/v1/batches/close", nil, nil, nil, 200)
	do("GET", "/v1/batches", nil, nil, nil, 200)
	do("GET", "/v1/batches/999999", nil, nil, nil, 404)
	do("GET", "/v1/batches/0", nil, nil, nil, 400)
	wantErr(api.TransactionRequest{Op: "void", Original: snack.ID}, 409, "batch_closed")
	today, from := jstDay(0), jstDay(-3)
	rq := "/v1/reports/settlement?from=" + from + "&to=" + today
	do("GET", rq, nil, nil, nil, 200)
	do("GET", rq+"&format=csv", nil, nil, &bytes.Buffer{}, 200)
	do("GET", rq, http.Header{"Accept": {"text/csv"}}, nil, &bytes.Buffer{}, 200)
	do("GET", "/v1/reports/settlement?from="+today+"&to="+from, nil, nil, nil, 400)
	month := today[:7]
	do("GET", "/v1/reports/vouchers?month="+month, nil, nil, nil, 200)
	do("GET", "/v1/reports/vouchers?month="+month+"&format=csv", nil, nil, &bytes.Buffer{}, 200)
	do("GET", "/v1/reports/vouchers?month="+month+"&format=csv&part=log", nil, nil, &bytes.Buffer{}, 200)
	do("GET", "/v1/reports/vouchers?month=13", nil, nil, nil, 400)

	// The store's care: a backup and a key rotation.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	do("POST", "/v1/store/backup", nil, api.BackupRequest{Recipients: []string{id.Recipient().String()}}, &backup, 200)
	if _, err := age.Decrypt(&backup, id); err != nil {
		t.Fatalf("the backup does not open: %v", err)
	}
	do("POST", "/v1/store/backup", nil, api.BackupRequest{}, nil, 400)
	kek := filepath.Join(t.TempDir(), "kek.next")
	if _, err := offline.CreateKEKFile(kek, d.m.Config.DataDir); err != nil {
		t.Fatal(err)
	}
	do("POST", "/v1/keys/rotate", nil, api.RotateRequest{KEKFile: kek}, nil, 200)
	do("POST", "/v1/keys/rotate", nil, api.RotateRequest{KEKFile: "relative"}, nil, 400)
	do("POST", "/v1/store/retention?dry_run=true", nil, nil, nil, 200)

	// Every operation of the document was exercised, for real.
	seen := v.Seen()
	var missing []string
	for path, item := range v.Doc().Paths.Map() {
		for method := range item.Operations() {
			if seen[method+" "+path] == 0 {
				missing = append(missing, method+" "+path)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the day did not exercise %s", strings.Join(missing, ", "))
	}
}
