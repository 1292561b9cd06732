package settlement_test

import (
	"testing"

	"github.com/sterad/sterad/settlement"
)

func TestPayoutDate(t *testing.T) {
	cal := settlement.DefaultCalendar()
	tests := []struct {
		sale, want, why string
	}{
		// 1st–15th: the last day of the month.
		{"2025-01-01", "2025-01-31", "Friday"},
		{"2025-01-15", "2025-01-31", "the 15th is still the first half"},
		{"2025-03-01", "2025-03-31", "Monday"},
		{"2025-05-06", "2025-05-30", "May 31 is a Saturday; a sale on a holiday is paid like any other"},
		{"2025-08-01", "2025-08-29", "Aug 31 is a Sunday"},
		{"2025-12-01", "2025-12-30", "Dec 31 is a bank holiday (Wednesday)"},
		{"2025-12-15", "2025-12-30", "Dec 31 is a bank holiday"},
		{"2026-02-10", "2026-02-27", "Feb 28 2026 is a Saturday"},
		{"2026-05-10", "2026-05-29", "May 31 2026 is a Sunday"},
		{"2026-12-01", "2026-12-30", "Dec 31 2026 is a bank holiday (Thursday)"},
		{"2027-02-10", "2027-02-26", "Feb 28 2027 is a Sunday"},
		{"2027-05-01", "2027-05-31", "Monday"},
		{"2027-12-01", "2027-12-30", "Dec 31 2027 is a bank holiday (Friday)"},
		{"2028-02-01", "2028-02-29", "leap year: Feb 29 2028 is a Tuesday"},
		{"2028-02-15", "2028-02-29", "leap year"},
		{"2028-12-01", "2028-12-29", "Dec 31 2028 is a Sunday, Dec 30 a Saturday"},

		// 16th–end: the 15th of the next month.
		{"2025-01-16", "2025-02-14", "Feb 15 is a Saturday"},
		{"2025-01-31", "2025-02-14", "month end, Feb 15 is a Saturday"},
		{"2025-02-28", "2025-03-14", "Feb's last day; Mar 15 is a Saturday"},
		{"2025-04-30", "2025-05-15", "Thursday"},
		{"2025-06-16", "2025-07-15", "Tuesday"},
		{"2025-08-16", "2025-09-12", "Sep 15 2025 is 敬老の日 (Monday)"},
		{"2025-08-31", "2025-09-12", "Sep 15 2025 is 敬老の日"},
		{"2025-10-16", "2025-11-14", "Nov 15 is a Saturday"},
		{"2025-11-30", "2025-12-15", "Monday"},
		{"2025-12-16", "2026-01-15", "across the year end"},
		{"2025-12-31", "2026-01-15", "a sale on a bank holiday"},
		{"2026-04-20", "2026-05-15", "Friday"},
		{"2026-12-20", "2027-01-15", "Friday"},
		{"2027-12-20", "2028-01-14", "Jan 15 2028 is a Saturday"},
		{"2028-01-20", "2028-02-15", "Tuesday"},
		{"2028-02-29", "2028-03-15", "leap day sale"},
		{"2024-12-20", "2025-01-15", "a 2024 sale paid in a covered year"},
	}
	for _, tt := range tests {
		got, err := cal.PayoutDate(date(t, tt.sale))
		if err != nil {
			t.Errorf("PayoutDate(%s): %v", tt.sale, err)
			continue
		}
		if got.String() != tt.want {
			t.Errorf("PayoutDate(%s) = %s, want %s (%s)", tt.sale, got, tt.want, tt.why)
		}
		if ok, _ := cal.IsBusinessDay(got); !ok {
			t.Errorf("PayoutDate(%s) = %s is not a business day", tt.sale, got)
		}
	}
}

// TestPayoutDateEveryDay checks the schedule's shape on every sale day
// of the covered years: a business day, never after the nominal date,
// at most a week before it, and the same for every day of a half-month.
func TestPayoutDateEveryDay(t *testing.T) {
	cal := settlement.DefaultCalendar()
	d := date(t, "2025-01-01")
	last := date(t, "2028-12-15")
	for ; !d.After(last); d = d.AddDays(1) {
		got, err := cal.PayoutDate(d)
		if err != nil {
			t.Fatalf("PayoutDate(%s): %v", d, err)
		}
		nominal := d
		if d.Day <= 15 {
			nominal.Day = 1
			nominal = nominal.AddDays(40)
			nominal.Day = 1
			nominal = nominal.AddDays(-1) // last day of d's month
		} else {
			nominal.Day = 1
			nominal = nominal.AddDays(40)
			nominal.Day = 15
		}
		if got.After(nominal) || got.Before(nominal.AddDays(-7)) {
			t.Errorf("PayoutDate(%s) = %s, nominal %s", d, got, nominal)
		}
		first := d
		if d.Day <= 15 {
			first.Day = 1
		} else {
			first.Day = 16
		}
		if same, _ := cal.PayoutDate(first); same != got {
			t.Errorf("PayoutDate(%s) = %s but PayoutDate(%s) = %s", d, got, first, same)
		}
	}
}
