package sterad_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/sterad/sterad"
)

func pct(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func yen(n int64) sterad.Amount { return sterad.NewAmount(n, sterad.JPY) }

func date(t *testing.T, s string) sterad.Date {
	t.Helper()
	d, err := sterad.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// examplePolicy is the documented cancellation_policy: 20 % of the first
// night from 7 days before, 50 % the day before, 100 % on the day, a
// no-show at 100 %.
func examplePolicy() sterad.CancellationPolicy {
	return sterad.CancellationPolicy{
		Version: "2026-04",
		Rows: []sterad.FeeRow{
			{DaysBefore: 7, Percent: pct("20"), Of: sterad.FeeOfFirstNight},
			{DaysBefore: 1, Percent: pct("50"), Of: sterad.FeeOfFirstNight},
			{DaysBefore: 0, Percent: pct("100"), Of: sterad.FeeOfFirstNight},
		},
		NoShow: &sterad.NoShowFee{Percent: pct("100"), Of: sterad.FeeOfFirstNight},
	}
}

func TestCancellationPolicyValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*sterad.CancellationPolicy)
		want []string // every problem reported, each naming its key
	}{
		{"the example", func(*sterad.CancellationPolicy) {}, nil},
		{"rows in any order", func(p *sterad.CancellationPolicy) {
			p.Rows[0], p.Rows[2] = p.Rows[2], p.Rows[0]
		}, nil},
		{"a free cancellation on the day", func(p *sterad.CancellationPolicy) {
			p.Rows = []sterad.FeeRow{{DaysBefore: 0, Percent: pct("0"), Of: sterad.FeeOfFirstNight}}
		}, nil},
		{"no row for the arrival day", func(p *sterad.CancellationPolicy) { p.Rows = p.Rows[:2] },
			[]string{"rows: no row covers the arrival day"}},
		{"overlapping rows", func(p *sterad.CancellationPolicy) {
			p.Rows = append(p.Rows, sterad.FeeRow{DaysBefore: 7, Percent: pct("30"), Of: sterad.FeeOfFirstNight})
		}, []string{"rows[3]: days_before 7 overlaps rows[0]"}},
		{"percent above 100", func(p *sterad.CancellationPolicy) { p.Rows[2].Percent = pct("120") },
			[]string{"rows[2]: percent 120 is outside 0–100"}},
		{"negative percent", func(p *sterad.CancellationPolicy) { p.Rows[0].Percent = pct("-5") },
			[]string{"rows[0]: percent -5 is outside 0–100"}},
		{"no-show above 100", func(p *sterad.CancellationPolicy) { p.NoShow.Percent = pct("150") },
			[]string{"noshow: percent 150 is outside 0–100"}},
		{"unknown basis", func(p *sterad.CancellationPolicy) { p.Rows[1].Of = "whole_stay" },
			[]string{`rows[1]: of "whole_stay" is unknown`}},
		{"negative days", func(p *sterad.CancellationPolicy) { p.Rows[0].DaysBefore = -1 },
			[]string{"rows[0]: days_before -1 is negative"}},
		{"a fee that falls", func(p *sterad.CancellationPolicy) { p.Rows[0].Percent = pct("80") },
			[]string{"rows: the fee falls from 80 % at 7 days before to 50 % at 1 days before"}},
		{"no version", func(p *sterad.CancellationPolicy) { p.Version = "" }, []string{"version: is required"}},
		{"no rows", func(p *sterad.CancellationPolicy) { p.Rows = nil }, []string{"rows: at least one row is required"}},
		{"no no-show row", func(p *sterad.CancellationPolicy) { p.NoShow = nil }, []string{"noshow: is required"}},
		{"every problem at once", func(p *sterad.CancellationPolicy) {
			p.Rows[2].DaysBefore = 1
			p.Rows[0].Percent = pct("101")
		}, []string{"rows[0]: percent 101 is outside 0–100", "rows[2]: days_before 1 overlaps rows[1]", "no row covers the arrival day"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := examplePolicy()
			tt.edit(&p)
			err := p.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("valid policy refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("invalid policy accepted, want %q", tt.want)
			}
			if sterad.ErrorKind(err) != sterad.EInvalid || sterad.ErrorCode(err) != "invalid_policy" {
				t.Errorf("kind %q code %q, want invalid invalid_policy", sterad.ErrorKind(err), sterad.ErrorCode(err))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestCancellationFee(t *testing.T) {
	p := examplePolicy()
	arrival := date(t, "2026-11-21")
	tests := []struct {
		cancelled  string
		firstNight int64
		fee        int64
		rule       string // Ref
	}{
		{"2026-10-01", 18000, 0, "free"},
		{"2026-11-13", 18000, 0, "free"}, // 8 days before: before the table starts
		{"2026-11-14", 18000, 3600, "7"}, // 7 days before: 20 %
		{"2026-11-18", 18000, 3600, "7"},
		{"2026-11-19", 18000, 3600, "7"}, // 2 days before: still the 7-day row
		{"2026-11-20", 18000, 9000, "1"}, // the day before: 50 %
		{"2026-11-21", 18000, 18000, "0"},
		{"2026-11-22", 18000, 18000, "noshow"}, // after the arrival day: a no-show
		// Truncated to the yen, in the guest's favour.
		{"2026-11-20", 12345, 6172, "1"},
		{"2026-11-14", 12345, 2469, "7"},
		{"2026-11-14", 9999, 1999, "7"},
		{"2026-11-21", 0, 0, "0"},
	}
	for _, tt := range tests {
		fee, rule, err := p.Fee(yen(tt.firstNight), arrival, date(t, tt.cancelled))
		if err != nil {
			t.Errorf("cancelled %s: %v", tt.cancelled, err)
			continue
		}
		if fee.Minor() != tt.fee || rule.Ref() != tt.rule || fee.Currency != sterad.JPY {
			t.Errorf("first night ¥%d cancelled %s: fee %s by rule %s (%s), want ¥%d by %s", tt.firstNight, tt.cancelled, fee.Display(), rule.Ref(), rule, tt.fee, tt.rule)
		}
	}

	// Across a year end: 7 days before 2 January is 26 December.
	fee, rule, _ := p.Fee(yen(10000), date(t, "2027-01-02"), date(t, "2026-12-26"))
	if fee.Minor() != 2000 || rule.Kind != sterad.FeeRuleDaysBefore || rule.DaysBefore != 7 {
		t.Errorf("across the year end: %s by %+v", fee, rule)
	}
	// A fraction of a percent.
	q := examplePolicy()
	q.Rows[0].Percent = pct("33.33")
	if fee, _, _ := q.Fee(yen(10000), arrival, date(t, "2026-11-15")); fee.Minor() != 3333 {
		t.Errorf("33.33 %% of ¥10,000 = %s, want ¥3,333", fee.Display())
	}

	for name, call := range map[string]func() error{
		"negative first night": func() error { _, _, err := p.Fee(yen(-1), arrival, arrival); return err },
		"no first night":       func() error { _, _, err := p.Fee(sterad.Amount{}, arrival, arrival); return err },
		"no arrival":           func() error { _, _, err := p.Fee(yen(100), sterad.Date{}, arrival); return err },
	} {
		if err := call(); sterad.ErrorKind(err) != sterad.EInvalid {
			t.Errorf("%s: %v, want an invalid-input error", name, err)
		}
	}
}

func TestPolicySnapshot(t *testing.T) {
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	p := examplePolicy()
	p.Rows[0], p.Rows[2] = p.Rows[2], p.Rows[0]
	snap, err := sterad.NewPolicySnapshot(p, yen(18000), at)
	if err != nil {
		t.Fatal(err)
	}
	// The hotel changes its policy later: the recorded copy is unchanged.
	p.Rows[1].Percent = pct("100")
	p.NoShow.Percent = pct("0")
	fee, rule, err := snap.Fee(date(t, "2026-11-21"), date(t, "2026-11-20"))
	if err != nil || fee.Minor() != 9000 || rule.Ref() != "1" {
		t.Fatalf("fee from the snapshot: %s %s %v, want ¥9,000 by row 1", fee, rule.Ref(), err)
	}
	if fee, rule, _ := snap.NoShowFee(); fee.Minor() != 18000 || rule.Ref() != "noshow" {
		t.Errorf("no-show fee from the snapshot: %s %s", fee, rule.Ref())
	}
	if snap.Policy.Rows[0].DaysBefore != 7 || snap.Policy.Version != "2026-04" {
		t.Errorf("the snapshot's rows are not in reading order: %+v", snap.Policy.Rows)
	}

	// Stored as JSON with the reservation and read back: the same fees.
	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var back sterad.PolicySnapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
	if !back.RecordedAt.Equal(at) || back.FirstNight.Minor() != 18000 || back.Policy.Version != "2026-04" {
		t.Errorf("read back: %+v", back)
	}
	for _, day := range []string{"2026-11-01", "2026-11-14", "2026-11-20", "2026-11-21", "2026-11-25"} {
		a, ra, _ := snap.Fee(date(t, "2026-11-21"), date(t, day))
		b, rb, _ := back.Fee(date(t, "2026-11-21"), date(t, day))
		if a.Cmp(b) != 0 || ra.Ref() != rb.Ref() {
			t.Errorf("%s: %s by %s before storing, %s by %s after", day, a, ra.Ref(), b, rb.Ref())
		}
	}
	if !strings.Contains(string(b), `"version":"2026-04"`) || !strings.Contains(string(b), `"recorded_at"`) {
		t.Errorf("JSON lacks the version or the time: %s", b)
	}

	bad := examplePolicy()
	bad.Rows = bad.Rows[:1]
	if _, err := sterad.NewPolicySnapshot(bad, yen(18000), at); sterad.ErrorCode(err) != "invalid_policy" {
		t.Errorf("an invalid policy was recorded: %v", err)
	}
	if _, err := sterad.NewPolicySnapshot(examplePolicy(), yen(0), at); sterad.ErrorCode(err) != "invalid_amount" {
		t.Errorf("a zero first night was recorded: %v", err)
	}
}

func TestStayNights(t *testing.T) {
	for _, tt := range []struct {
		in, out string
		nights  int
	}{{"2016-09-30", "2016-10-02", 2}, {"2016-08-01", "2016-08-01", 0}, {"2016-02-28", "2016-03-01", 2}, {"2016-12-31", "2017-01-01", 1}} {
		if n := (sterad.Stay{CheckIn: date(t, tt.in), CheckOut: date(t, tt.out)}).Nights(); n != tt.nights {
			t.Errorf("%s–%s: %d nights, want %d", tt.in, tt.out, n, tt.nights)
		}
	}
}
