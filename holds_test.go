package sterad_test

import (
	"testing"
	"time"

	"github.com/sterad/sterad"
)

func TestOpenHolds(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skip("no time zone data")
	}
	now := time.Date(2026, 11, 23, 1, 30, 0, 0, tokyo) // 23 November in Tokyo, still the 22nd in UTC
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	stay := func(in, out string) *sterad.Stay {
		return &sterad.Stay{CheckIn: date(t, in), CheckOut: date(t, out)}
	}
	txns := []*sterad.Transaction{
		{ID: "P-OLD", Op: sterad.OpPreauth, Status: sterad.StatusApproved, Amount: yen(30000), Reference: "RSV-1", CreatedAt: ago(8 * 24 * time.Hour), Stay: stay("2026-11-15", "2026-11-25")},
		{ID: "P-TODAY", Op: sterad.OpPreauth, Status: sterad.StatusApproved, Amount: yen(20000), AuthorizedTotal: yen(35000), Reference: "RSV-2", CreatedAt: ago(2 * 24 * time.Hour), Stay: stay("2026-11-21", "2026-11-23")},
		{ID: "P-PAST", Op: sterad.OpPreauth, Status: sterad.StatusStoodIn, Amount: yen(10000), Reference: "RSV-3", CreatedAt: ago(3 * 24 * time.Hour), Stay: stay("2026-11-20", "2026-11-22")},
		{ID: "P-LIMIT", Op: sterad.OpPreauth, Status: sterad.StatusApproved, Amount: yen(10000), CreatedAt: ago(7 * 24 * time.Hour)},
		{ID: "P-DONE", Op: sterad.OpPreauth, Status: sterad.StatusApproved, Amount: yen(10000), CompletedBy: "C1", CreatedAt: ago(time.Hour)},
		{ID: "P-VOIDING", Op: sterad.OpPreauth, Status: sterad.StatusApproved, Amount: yen(10000), VoidedBy: "V1", CreatedAt: ago(time.Hour)},
		{ID: "P-VOIDED", Op: sterad.OpPreauth, Status: sterad.StatusVoided, Amount: yen(10000), CreatedAt: ago(time.Hour)},
		{ID: "P-DECLINED", Op: sterad.OpPreauth, Status: sterad.StatusDeclined, Amount: yen(10000), CreatedAt: ago(time.Hour)},
		{ID: "P-REVERSED", Op: sterad.OpPreauth, Status: sterad.StatusReversed, Amount: yen(10000), CreatedAt: ago(time.Hour)},
		{ID: "P-PENDING", Op: sterad.OpPreauth, Status: sterad.StatusPending, Amount: yen(10000), CreatedAt: ago(time.Minute)},
		{ID: "S-1", Op: sterad.OpSale, Status: sterad.StatusApproved, Amount: yen(10000), CreatedAt: ago(9 * 24 * time.Hour)},
		{ID: "P-FUTURE", Op: sterad.OpPreauth, Status: sterad.StatusApproved, Amount: yen(5000), CreatedAt: now.Add(time.Minute)}, // a clock step back
	}
	holds := sterad.OpenHolds(txns, sterad.HoldOptions{Now: now, Location: tokyo})
	type row struct {
		id                 string
		amount             int64
		old, today, passed bool
	}
	want := []row{
		{"P-OLD", 30000, true, false, false},
		{"P-LIMIT", 10000, false, false, false}, // exactly 7 days: not older than the limit
		{"P-PAST", 10000, false, false, true},
		{"P-TODAY", 35000, false, true, false}, // the authorized total, incrementals included
		{"P-FUTURE", 5000, false, false, false},
	}
	if len(holds) != len(want) {
		t.Fatalf("holds: %+v", holds)
	}
	for i, w := range want {
		h := holds[i]
		if h.ID != w.id || h.Amount.Minor() != w.amount || h.Old != w.old || h.CheckoutToday != w.today || h.CheckoutPassed != w.passed {
			t.Errorf("hold %d: %s %s old=%v today=%v passed=%v, want %+v", i, h.ID, h.Amount, h.Old, h.CheckoutToday, h.CheckoutPassed, w)
		}
	}
	if holds[0].Age != 8*24*time.Hour || holds[0].AgeSeconds != 8*24*3600 || holds[0].Reference != "RSV-1" || holds[4].Age != 0 {
		t.Errorf("ages: %v %d %v", holds[0].Age, holds[0].AgeSeconds, holds[4].Age)
	}

	// In UTC it is still the 22nd: P-PAST checks out today.
	utc := sterad.OpenHolds(txns, sterad.HoldOptions{Now: now})
	if utc[2].ID != "P-PAST" || !utc[2].CheckoutToday || utc[3].CheckoutToday {
		t.Errorf("in UTC: %+v", utc)
	}

	// A shorter limit, and only those older than two days.
	short := sterad.OpenHolds(txns, sterad.HoldOptions{Now: now, Location: tokyo, Limit: 48 * time.Hour, OlderThan: 48 * time.Hour})
	if len(short) != 4 || !short[0].Old || !short[1].Old || !short[2].Old || short[3].Old || short[3].ID != "P-TODAY" {
		t.Errorf("older than 48h with a 48h limit: %+v", short)
	}
}
