package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad/api"
)

// Defects of issue 9 in guaranteed reservations, end to end against the
// test acquirer: what a clerk at the CLI or the property system sees.

// clerk runs a client command as a clerk does, with the API token in the
// environment: `noshow --token` is the card token there (a global --token
// before the command would be taken as the card token).
func (d *testDaemon) clerk(args ...string) (string, error) {
	d.t.Helper()
	d.t.Setenv("STERAD_API_TOKEN", d.m.Token)
	cmd := NewRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"--api", d.m.APIAddr}, args...))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// staysFrom returns a stay arriving days from today, as the API and the
// CLI take it.
func staysFrom(days int) (*api.StayInput, []string) {
	in := time.Now().AddDate(0, 0, days)
	s := &api.StayInput{CheckIn: in.Format(time.DateOnly), CheckOut: in.AddDate(0, 0, 2).Format(time.DateOnly)}
	return s, []string{"--checkin", s.CheckIn, "--checkout", s.CheckOut}
}

// #4: a reservation arriving in two weeks cannot be charged as a no-show
// today by typing today's stay.
func TestNoShowChecksTheStoredStay(t *testing.T) {
	d := startDaemon(t, clearMode)
	later, laterFlags := staysFrom(14)
	_, pastFlags := staysFrom(-1)
	cc := d.post(api.TransactionRequest{Op: "cardcheck", Card: keyed("4111111111111111"), Reference: "RSV-LATER", Stay: later})
	if cc.Status != "approved" || cc.Token == nil {
		t.Fatalf("guarantee: %+v", cc)
	}
	before := d.m.SimHost.Ledger().Approved
	for name, args := range map[string][]string{
		"vault card": {"noshow", "--ref", "RSV-LATER", "--amount", "18000"},
		"token":      {"noshow", "--ref", "RSV-LATER", "--amount", "18000", "--token", *cc.Token},
		"keyed":      {"noshow", "--ref", "RSV-LATER", "--amount", "18000", "--pan", "5555555555554444", "--expiry", expiry()},
	} {
		out, err := d.clerk(append(args, pastFlags...)...)
		if err == nil || !strings.Contains(err.Error()+out, "stay_mismatch") || !strings.Contains(err.Error()+out, later.CheckIn) {
			t.Errorf("%s: a no-show typed for yesterday on a reservation arriving %s: %v\n%s", name, later.CheckIn, err, out)
		}
	}
	// With the stored stay: too early.
	out, err := d.clerk(append([]string{"noshow", "--ref", "RSV-LATER", "--amount", "18000"}, laterFlags...)...)
	if err == nil || !strings.Contains(err.Error()+out, "noshow_too_early") {
		t.Fatalf("no-show before the stored arrival: %v\n%s", err, out)
	}
	if after := d.m.SimHost.Ledger().Approved; len(after) != len(before) {
		t.Fatalf("the host charged %d more", len(after)-len(before))
	}
	if r, err := d.c.Reservation(context.Background(), "RSV-LATER"); err != nil || r.State != "guaranteed" || r.Stay.CheckIn.String() != later.CheckIn || len(r.Charges) != 0 {
		t.Fatalf("reservation: %v %+v", err, r)
	}
}

// #5: after `vault release` the token charges nothing, and a token
// charges only the reservation it was issued for.
func TestTokenDiesWithTheReservation(t *testing.T) {
	d := startDaemon(t, clearMode)
	ctx := context.Background()
	past, pastFlags := staysFrom(-1)
	a := d.post(api.TransactionRequest{Op: "cardcheck", Card: keyed("4111111111111111"), Reference: "RSV-CANCEL", Stay: past})
	b := d.post(api.TransactionRequest{Op: "cardcheck", Card: keyed("378282246310005"), Reference: "RSV-AMEX", Stay: past})
	if a.Token == nil || b.Token == nil {
		t.Fatalf("tokens: %+v %+v", a, b)
	}
	if out, err := d.cli("vault", "release", "--ref", "RSV-CANCEL"); err != nil {
		t.Fatalf("vault release: %v\n%s", err, out)
	}
	before := d.m.SimHost.Ledger().Approved
	for name, tt := range map[string]struct {
		ref, token, code string
	}{
		"released":          {"RSV-CANCEL", *a.Token, "reservation_released"},
		"another reference": {"RSV-OTHER", *a.Token, "token_mismatch"},
		"another guarantee": {"RSV-AMEX", *a.Token, "token_mismatch"},
	} {
		out, err := d.clerk(append([]string{"noshow", "--ref", tt.ref, "--amount", "18000", "--token", tt.token}, pastFlags...)...)
		if err == nil || !strings.Contains(err.Error()+out, tt.code) {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
		if err != nil && strings.Contains(err.Error()+out, tt.token) {
			t.Errorf("%s: the refusal shows the whole token: %v", name, err)
		}
	}
	if after := d.m.SimHost.Ledger().Approved; len(after) != len(before) {
		t.Fatalf("the host charged %d more", len(after)-len(before))
	}
	if r, err := d.c.Reservation(ctx, "RSV-CANCEL"); err != nil || r.State != "released" || r.Token != "" || r.CardKept {
		t.Fatalf("released reservation: %v %+v", err, r)
	}
	// The token of RSV-AMEX charges RSV-AMEX, with its brand (#15b).
	nt := d.post(api.TransactionRequest{Op: "noshow", Reference: "RSV-AMEX", Amount: "22000", Stay: past, Token: *b.Token})
	if nt.Status != "approved" || nt.Entry != "token" || nt.Brand != "amex" || nt.MaskedPAN != "378282*****0005" {
		t.Fatalf("token no-show: %+v", nt)
	}
	if r, _ := d.c.Reservation(ctx, "RSV-AMEX"); r.State != "charged" || len(r.Charges) != 1 || r.Charges[0] != nt.ID {
		t.Fatalf("charged reservation: %+v", r)
	}
}

// #6: a card check with a reference and no stay is refused before
// anything is sent or kept.
func TestCardCheckReferenceWithoutStay(t *testing.T) {
	d := startDaemon(t, clearMode)
	n := d.count()
	ae := d.postErr(api.TransactionRequest{Op: "cardcheck", Card: keyed("4111111111111111"), Reference: "RSV-NOSTAY"})
	if ae.Status != 400 || ae.Code != "missing_stay" {
		t.Fatalf("card check with a reference and no stay: %v", ae)
	}
	if d.count() != n {
		t.Fatal("the refused card check was stored")
	}
}
