package settlement_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/settlement"
)

var update = flag.Bool("update", false, "rewrite testdata/holidays/ from the holiday rules")

const calendarFile = "../testdata/holidays/jp-bank-holidays-2025-2028.txt"

func date(t testing.TB, s string) sterad.Date {
	t.Helper()
	d, err := sterad.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestCalendarFile regenerates the shipped calendar from the rules and
// compares it with the file (-update rewrites it).
func TestCalendarFile(t *testing.T) {
	var buf bytes.Buffer
	if _, err := settlement.DefaultCalendar().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.MkdirAll(filepath.Dir(calendarFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(calendarFile, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(calendarFile)
	if err != nil {
		t.Fatalf("%v (run with -update to generate it)", err)
	}
	if !bytes.Equal(got, buf.Bytes()) {
		t.Errorf("%s differs from the rules (run go test ./settlement/ -run TestCalendarFile -update and review the diff):\n%s", calendarFile, buf.String())
	}
	// The file read back is the same calendar.
	file, err := settlement.ReadCalendar(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	for y := settlement.DefaultFirstYear; y <= settlement.DefaultLastYear; y++ {
		want := settlement.DefaultCalendar().Holidays(y)
		have := file.Holidays(y)
		if len(want) != len(have) {
			t.Fatalf("%d: file has %d days, rules %d", y, len(have), len(want))
		}
		for i := range want {
			if want[i] != have[i] {
				t.Errorf("%d: file has %v, rules %v", y, have[i], want[i])
			}
		}
	}
}

// TestNationalHolidaysOfficial compares the rules with the national
// holidays the Cabinet Office published for 2023–2026, written out by
// hand.
func TestNationalHolidaysOfficial(t *testing.T) {
	official := map[int][]string{
		2025: {
			"2025-01-01", "2025-01-13", "2025-02-11", "2025-02-23", "2025-02-24", "2025-03-20",
			"2025-04-29", "2025-05-03", "2025-05-04", "2025-05-05", "2025-05-06", "2025-07-21",
			"2025-08-11", "2025-09-15", "2025-09-23", "2025-10-13", "2025-11-03", "2025-11-23",
			"2025-11-24",
		},
		2026: {
			"2026-01-01", "2026-01-12", "2026-02-11", "2026-02-23", "2026-03-20", "2026-04-29",
			"2026-05-03", "2026-05-04", "2026-05-05", "2026-05-06", "2026-07-20", "2026-08-11",
			"2026-09-21", "2026-09-22", "2026-09-23", "2026-10-12", "2026-11-03", "2026-11-23",
		},
	}
	// 2023 and 2024 exercise rules 2025–2026 do not: a substitute holiday
	// on Jan 2 and on a Monday after a Sunday equinox.
	official[2023] = []string{
		"2023-01-01", "2023-01-02", "2023-01-09", "2023-02-11", "2023-02-23", "2023-03-21",
		"2023-04-29", "2023-05-03", "2023-05-04", "2023-05-05", "2023-07-17", "2023-08-11",
		"2023-09-18", "2023-09-23", "2023-10-09", "2023-11-03", "2023-11-23",
	}
	official[2024] = []string{
		"2024-01-01", "2024-01-08", "2024-02-11", "2024-02-12", "2024-02-23", "2024-03-20",
		"2024-04-29", "2024-05-03", "2024-05-04", "2024-05-05", "2024-05-06", "2024-07-15",
		"2024-08-11", "2024-08-12", "2024-09-16", "2024-09-22", "2024-09-23", "2024-10-14",
		"2024-11-03", "2024-11-04", "2024-11-23",
	}
	names := map[string]string{
		"2023-01-02": settlement.NameSubstitute,
		"2024-09-23": settlement.NameSubstitute,
		"2025-02-24": settlement.NameSubstitute,
		"2025-05-06": settlement.NameSubstitute,
		"2025-11-24": settlement.NameSubstitute,
		"2026-05-06": settlement.NameSubstitute,
		"2026-09-22": settlement.NameCitizens,
	}
	for year, want := range official {
		hs, err := settlement.NationalHolidays(year)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, h := range hs {
			got = append(got, h.Date.String())
			if n, ok := names[h.Date.String()]; ok && h.Name != n {
				t.Errorf("%s is %q, want %q", h.Date, h.Name, n)
			}
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%d:\n got %v\nwant %v", year, got, want)
		}
	}
}

func TestEquinoxes(t *testing.T) {
	// 2025 and 2026 as published; 2027 and 2028 as the approximation
	// predicts (the National Astronomical Observatory announces a year's
	// equinox days in the 暦要項 of the February before).
	want := map[int][2]string{
		2025: {"2025-03-20", "2025-09-23"},
		2026: {"2026-03-20", "2026-09-23"},
		2027: {"2027-03-21", "2027-09-23"},
		2028: {"2028-03-20", "2028-09-22"},
	}
	for y, w := range want {
		hs, err := settlement.NationalHolidays(y)
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]string{}
		for _, h := range hs {
			found[h.Date.String()] = h.Name
		}
		if !strings.HasPrefix(found[w[0]], "春分の日") || !strings.HasPrefix(found[w[1]], "秋分の日") {
			t.Errorf("%d: want 春分の日 %s and 秋分の日 %s", y, w[0], w[1])
		}
	}
}

func TestBankHolidays(t *testing.T) {
	cal := settlement.DefaultCalendar()
	tests := []struct {
		day  string
		want bool // business day
	}{
		{"2025-01-01", false}, // 元日
		{"2025-01-02", false}, // bank holiday (Thursday)
		{"2025-01-03", false}, // bank holiday (Friday)
		{"2025-01-06", true},  // Monday
		{"2025-02-24", false}, // 振替休日
		{"2025-05-06", false}, // 振替休日 for Sunday May 4
		{"2025-05-07", true},
		{"2025-11-14", true},
		{"2025-11-15", false}, // Saturday
		{"2025-11-24", false}, // 振替休日
		{"2025-12-30", true},
		{"2025-12-31", false}, // bank holiday (Wednesday)
		{"2026-09-22", false}, // 国民の休日
		{"2027-03-22", false}, // 振替休日 for Sunday 春分の日
		{"2028-01-03", false}, // bank holiday (Monday)
		{"2028-01-04", true},
		{"2028-02-29", true}, // leap day, a Tuesday
		{"2028-12-29", true},
	}
	for _, tt := range tests {
		got, err := cal.IsBusinessDay(date(t, tt.day))
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("IsBusinessDay(%s) = %v, want %v", tt.day, got, tt.want)
		}
	}
}

func TestHolidayCounts(t *testing.T) {
	// National holidays (incl. 振替休日 and 国民の休日) plus the bank
	// holidays Jan 2, Jan 3, Dec 31 (not separately counted when a
	// national holiday falls on them).
	want := map[int][2]int{2025: {19, 22}, 2026: {18, 21}, 2027: {17, 20}, 2028: {16, 19}}
	cal := settlement.DefaultCalendar()
	for y, w := range want {
		nat, err := settlement.NationalHolidays(y)
		if err != nil {
			t.Fatal(err)
		}
		if len(nat) != w[0] || len(cal.Holidays(y)) != w[1] {
			t.Errorf("%d: %d national holidays, %d bank holidays; want %d, %d", y, len(nat), len(cal.Holidays(y)), w[0], w[1])
		}
	}
	if got := cal.Years(); len(got) != 4 || got[0] != 2025 || got[3] != 2028 {
		t.Errorf("Years() = %v", got)
	}
}

func TestNationalHolidaysOutsideRules(t *testing.T) {
	for _, y := range []int{2021, 2100} {
		if _, err := settlement.NationalHolidays(y); err == nil {
			t.Errorf("NationalHolidays(%d): no error", y)
		}
	}
}

func TestNotCovered(t *testing.T) {
	cal := settlement.DefaultCalendar()
	tests := []struct {
		name string
		call func() error
	}{
		{"IsBusinessDay 2024", func() error { _, err := cal.IsBusinessDay(date(t, "2024-12-30")); return err }},
		{"IsBusinessDay 2029", func() error { _, err := cal.IsBusinessDay(date(t, "2029-01-04")); return err }},
		{"PreviousBusinessDay into 2024", func() error {
			_, err := cal.PreviousBusinessDay(date(t, "2025-01-01"))
			return err
		}},
		{"PayoutDate in 2029", func() error { _, err := cal.PayoutDate(date(t, "2028-12-16")); return err }},
	}
	for _, tt := range tests {
		err := tt.call()
		if sterad.ErrorCode(err) != settlement.CodeNotCovered || sterad.ErrorKind(err) != sterad.EInvalid {
			t.Errorf("%s: err = %v, want %s", tt.name, err, settlement.CodeNotCovered)
		}
	}
	_, err := cal.PayoutDate(date(t, "2028-12-16"))
	if msg := sterad.ErrorMessage(err); !strings.Contains(msg, "2025-2028") || !strings.Contains(msg, "2029") {
		t.Errorf("message %q should name the covered years and 2029", msg)
	}
	if _, err := cal.PayoutDate(sterad.Date{Year: 2025, Month: 2, Day: 30}); sterad.ErrorCode(err) != settlement.CodeInvalidDate {
		t.Errorf("PayoutDate(2025-02-30): err = %v, want %s", err, settlement.CodeInvalidDate)
	}
}

func TestPreviousBusinessDay(t *testing.T) {
	cal := settlement.DefaultCalendar()
	tests := []struct{ day, want string }{
		{"2025-05-07", "2025-05-02"}, // across Golden Week (3–6 May)
		{"2025-11-17", "2025-11-14"}, // Monday → Friday
		{"2026-01-05", "2025-12-30"}, // across the year end and Jan 1–3
		{"2026-09-24", "2026-09-18"}, // across Silver Week (19–23 Sep)
		{"2028-03-01", "2028-02-29"}, // leap day
	}
	for _, tt := range tests {
		got, err := cal.PreviousBusinessDay(date(t, tt.day))
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != tt.want {
			t.Errorf("PreviousBusinessDay(%s) = %s, want %s", tt.day, got, tt.want)
		}
	}
}

func TestLoadCalendar(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// A newer file: 2029 added from the rules, and 2028 overridden with an
	// extra (hypothetical) holiday on Friday 2028-12-15.
	var b strings.Builder
	b.WriteString("# operator calendar\n\n")
	for _, y := range []int{2028, 2029} {
		hs, err := settlement.BankHolidays(y)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if h.Date.Month == time.January && (h.Date.Day == 2 || h.Date.Day == 3) {
				continue // implied: banks close Dec 31–Jan 3 by law
			}
			b.WriteString(h.Date.String() + "\t" + h.Name + "\n")
		}
	}
	b.WriteString("2028-12-15 臨時休業 (hypothetical)\n")
	cal, err := settlement.LoadCalendar(write("new.txt", b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if got := cal.Years(); len(got) != 5 || got[0] != 2025 || got[4] != 2029 {
		t.Errorf("Years() = %v, want 2025–2029", got)
	}
	for _, tt := range []struct {
		sale, want string
	}{
		{"2028-12-16", "2029-01-15"}, // the year the default calendar could not answer
		{"2028-12-01", "2028-12-29"}, // Dec 31 2028 is a Sunday
		{"2028-11-16", "2028-12-14"}, // the file's extra holiday on Friday the 15th
		{"2025-10-20", "2025-11-14"}, // default years still there
	} {
		got, err := cal.PayoutDate(date(t, tt.sale))
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != tt.want {
			t.Errorf("PayoutDate(%s) = %s, want %s", tt.sale, got, tt.want)
		}
	}
	if ok, _ := cal.IsBusinessDay(date(t, "2029-01-02")); ok {
		t.Error("2029-01-02 should be a bank holiday even though the file omits it")
	}
	if _, err := cal.PayoutDate(date(t, "2029-12-16")); sterad.ErrorCode(err) != settlement.CodeNotCovered {
		t.Errorf("2030 payout: err = %v, want %s", err, settlement.CodeNotCovered)
	}

	bad := []struct {
		name, text, want string
	}{
		{"bad date", "2029-01-01 元日\n2029-02-30 nothing\n", `line 2: "2029-02-30" is not a valid YYYY-MM-DD date`},
		{"not a date", "# header\n\nJan 1 New Year\n", `line 3: "Jan" is not a valid YYYY-MM-DD date`},
		{"no name", "2029-01-01\n", "line 1: 2029-01-01 has no name"},
		{"duplicate", "2029-01-01 a\n2029-01-01 b\n", "line 2: 2029-01-01 is already listed on line 1"},
		{"empty", "# nothing\n", "no holidays listed"},
	}
	for _, tt := range bad {
		p := write(tt.name+".txt", tt.text)
		_, err := settlement.LoadCalendar(p)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err = %v, want it to name %s and say %q", tt.name, err, p, tt.want)
		}
	}
	if _, err := settlement.LoadCalendar(filepath.Join(dir, "missing.txt")); err == nil {
		t.Error("missing file: no error")
	}
}
