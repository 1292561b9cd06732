package sterad_test

import (
	"testing"
	"time"

	"github.com/sterad/sterad"
)

var allStatuses = []sterad.Status{
	sterad.StatusPending, sterad.StatusApproved, sterad.StatusDeclined, sterad.StatusStoodIn,
	sterad.StatusReversed, sterad.StatusVoided, sterad.StatusCancelled, sterad.StatusUnknown,
}

// TestStateMachine checks every pair of statuses against the table a
// payments engineer would draw.
func TestStateMachine(t *testing.T) {
	allowed := map[sterad.Status][]sterad.Status{
		sterad.StatusPending: {sterad.StatusPending, sterad.StatusApproved, sterad.StatusDeclined, sterad.StatusStoodIn, sterad.StatusCancelled, sterad.StatusUnknown, sterad.StatusReversed},
		sterad.StatusUnknown: {sterad.StatusUnknown, sterad.StatusReversed, sterad.StatusApproved, sterad.StatusDeclined},
		// A stood-in pre-authorization is sent as its 0100 when the link is
		// back; if that goes unanswered its outcome is unknown.
		sterad.StatusStoodIn:  {sterad.StatusStoodIn, sterad.StatusApproved, sterad.StatusDeclined, sterad.StatusVoided, sterad.StatusReversed, sterad.StatusUnknown},
		sterad.StatusApproved: {sterad.StatusApproved, sterad.StatusVoided, sterad.StatusReversed},
		// declined, reversed, voided, cancelled are final: nothing.
	}
	for _, from := range allStatuses {
		for _, to := range allStatuses {
			want := false
			for _, s := range allowed[from] {
				want = want || s == to
			}
			if got := sterad.CanTransition(from, to); got != want {
				t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
	for _, s := range allStatuses {
		if s.Final() != (len(allowed[s]) == 0) {
			t.Errorf("%s.Final() = %v", s, s.Final())
		}
	}
}

func TestTransitionJournals(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	tx := &sterad.Transaction{ID: "T1", Status: sterad.StatusPending}
	if err := tx.Transition(sterad.StatusApproved, sterad.StepDone, at, "approved 00"); err != nil {
		t.Fatal(err)
	}
	if len(tx.Events) != 1 || tx.Events[0].Status != sterad.StatusApproved || !tx.UpdatedAt.Equal(at) {
		t.Fatalf("events %+v", tx.Events)
	}
	err := tx.Transition(sterad.StatusDeclined, sterad.StepDone, at, "")
	if sterad.ErrorKind(err) != sterad.EConflict || tx.Status != sterad.StatusApproved || len(tx.Events) != 1 {
		t.Fatalf("approved → declined: err %v, status %s", err, tx.Status)
	}
}

func TestOpsAndMTI(t *testing.T) {
	if _, err := sterad.ParseOp("charge"); sterad.ErrorCode(err) != "unknown_op" {
		t.Errorf("unknown op: %v", err)
	}
	for _, m := range []struct{ req, resp, repeat sterad.MTI }{
		{"0100", "0110", "0100"}, {"0220", "0230", "0221"}, {"0221", "0230", "0221"}, {"0420", "0430", "0421"}, {"0421", "0430", "0421"}, {"0500", "0510", "0500"},
	} {
		if m.req.Response() != m.resp || m.req.Repeat() != m.repeat || m.req.IsResponse() || !m.resp.IsResponse() {
			t.Errorf("%s: response %s repeat %s", m.req, m.req.Response(), m.req.Repeat())
		}
	}
	if sterad.MTIReversal.Class() != "04" {
		t.Error("class of 0420")
	}
}

func TestTotalsNet(t *testing.T) {
	for _, tt := range []struct {
		tot  sterad.Totals
		sign string
		net  int64
	}{
		{sterad.Totals{DebitAmount: 100, CreditAmount: 30}, "C", 70},
		{sterad.Totals{DebitAmount: 30, CreditAmount: 100}, "D", 70},
		{sterad.Totals{}, "C", 0},
	} {
		if s, n := tt.tot.Net(); s != tt.sign || n != tt.net {
			t.Errorf("%+v.Net() = %s %d", tt.tot, s, n)
		}
	}
}
