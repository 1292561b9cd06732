package sterad_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/sterad/sterad"
)

// checkout applies vouchers and returns their log lines, as the check-out
// flow will.
func checkout(t *testing.T, programs []sterad.VoucherProgram, ref, in, out string, guests int, plan int64, usedOn string, v []sterad.VoucherUse) []sterad.VoucherLogEntry {
	t.Helper()
	c := sterad.VoucherCheckout{Reference: ref, Stay: sterad.Stay{CheckIn: date(t, in), CheckOut: date(t, out)}, Guests: guests,
		Booking: sterad.BookingDirect, Bill: sterad.Bill{RoomPlan: yen(plan)}, Vouchers: v}
	res, err := sterad.ApplyVouchers(programs, c, neverUsed)
	if err != nil {
		t.Fatal(err)
	}
	return sterad.VoucherLog(programs, c, res, date(t, usedOn), "TXN-"+ref)
}

func voucherLog(t *testing.T) ([]sterad.VoucherProgram, []sterad.VoucherLogEntry) {
	t.Helper()
	other := sterad.VoucherProgram{ID: "BEPPU", Name: "別府=湯けむり券", FaceValue: yen(3000), PerPersonNight: 2,
		ValidFrom: date(t, "2016-07-01"), ValidTo: date(t, "2016-12-31"), ClaimDay: 31}
	programs := []sterad.VoucherProgram{oita(t), other}
	var log []sterad.VoucherLogEntry
	// July: two stays with おおいた宿泊券, one with the other program.
	log = append(log, checkout(t, programs, "RSV-0001", "2016-07-20", "2016-07-22", 2, 40000, "2016-07-22", vouchers("0000000001", "0000000002", "0000000003"))...)
	log = append(log, checkout(t, programs, "RSV-0002", "2016-07-31", "2016-08-01", 1, 12800, "2016-08-01", vouchers("0000000004", "0000000005"))...)
	log = append(log, checkout(t, programs, "=RSV-0003", "2016-07-25", "2016-07-26", 1, 9000, "2016-07-26",
		[]sterad.VoucherUse{{Program: "BEPPU", Number: "B-17", HolderReason: "=HYPERLINK(\"x\"), 妻の名義"}})...)
	// Q7's stay: checked in 30 September, out 2 October; the stay date
	// written is the night vouchers pay for.
	log = append(log, checkout(t, programs, "RSV-0004", "2016-09-30", "2016-10-02", 1, 20000, "2016-10-02", vouchers("0000000006"))...)
	return programs, log
}

func TestVoucherLog(t *testing.T) {
	_, log := voucherLog(t)
	if len(log) != 7 {
		t.Fatalf("%d log lines, want 7", len(log))
	}
	first := log[0]
	if first.Number != "0000000001" || first.Program != "OITA2016" || first.StayDate.String() != "2016-07-20" || first.Nights != 2 ||
		first.Guests != 2 || first.Reference != "RSV-0001" || first.Applied.Minor() != 5000 || first.UsedOn.String() != "2016-07-22" || first.Transaction != "TXN-RSV-0001" {
		t.Errorf("first line: %+v", first)
	}
	q7 := log[6]
	if q7.StayDate.String() != "2016-09-30" || q7.Nights != 1 || q7.CheckOut.String() != "2016-10-02" || q7.UsedOn.String() != "2016-10-02" {
		t.Errorf("Q7's line: %+v", q7)
	}
	if log[5].HolderMatches || !strings.Contains(log[5].HolderReason, "妻の名義") {
		t.Errorf("the reason for another's voucher is not logged: %+v", log[5])
	}
}

func TestVoucherClaims(t *testing.T) {
	programs, log := voucherLog(t)
	july, _ := sterad.ParseYearMonth("2016-07")
	claims := sterad.VoucherClaims(programs, log, july)
	want := []struct {
		program string
		n       int
		total   int64
		due     string
	}{{"BEPPU", 1, 3000, "2016-08-31"}, {"OITA2016", 3, 15000, "2016-08-10"}}
	if len(claims) != len(want) {
		t.Fatalf("July's claims: %+v", claims)
	}
	for i, w := range want {
		c := claims[i]
		if c.Program != w.program || c.Vouchers != w.n || c.Total.Minor() != w.total || c.Due.String() != w.due || c.Month != july {
			t.Errorf("claim %d: %+v, want %+v", i, c, w)
		}
	}
	// A voucher taken at a check-out on 1 August is claimed with August's,
	// though its night was in July (closed at month end by the day it was used).
	aug, _ := sterad.ParseYearMonth("2016-08")
	if c := sterad.VoucherClaims(programs, log, aug); len(c) != 1 || c[0].Vouchers != 2 || c[0].Total.Minor() != 10000 || c[0].Due.String() != "2016-09-10" {
		t.Errorf("August's claims: %+v", c)
	}
	if c := sterad.VoucherClaims(programs, log, sterad.YearMonth{Year: 2016, Month: 11}); len(c) != 0 {
		t.Errorf("November has no vouchers: %+v", c)
	}
	// A program no longer configured is still claimed, without a due date.
	if c := sterad.VoucherClaims(programs[:1], log, july); len(c) != 2 || c[0].Name != "BEPPU" || !c[0].Due.IsZero() {
		t.Errorf("claims of a removed program: %+v", c)
	}

	r := sterad.NewVoucherReport(programs, log, july)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Log) != 4 || !strings.Contains(string(b), `"month":"2016-07"`) || !strings.Contains(string(b), `"due":"2016-08-10"`) {
		t.Errorf("report: %s", b)
	}
}

// The log and the claim as CSV, parsed back: the same rows, and cells a
// spreadsheet would run as formulas defused.
func TestVoucherCSVParsesBack(t *testing.T) {
	programs, log := voucherLog(t)
	july, _ := sterad.ParseYearMonth("2016-07")
	lines := sterad.VoucherLogOf(log, july)

	var buf bytes.Buffer
	if err := sterad.WriteVoucherLogCSV(&buf, lines); err != nil {
		t.Fatal(err)
	}
	raw, err := csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(raw[0], sterad.VoucherLogHeader) || len(raw) != 1+len(lines) {
		t.Fatalf("log CSV:\n%s", buf.String())
	}
	for _, row := range raw[1:] {
		for _, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
				t.Errorf("a cell a spreadsheet would run: %q", cell)
			}
		}
	}
	back, err := sterad.ReadVoucherLogCSV(bytes.NewReader(buf.Bytes()), sterad.JPY)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, lines) {
		t.Errorf("log parsed back:\n%+v\nwant\n%+v\nCSV:\n%s", back, lines, buf.String())
	}

	buf.Reset()
	claims := sterad.VoucherClaims(programs, log, july)
	if err := sterad.WriteVoucherClaimCSV(&buf, claims); err != nil {
		t.Fatal(err)
	}
	if want := "program,name,month,vouchers,total,due\nBEPPU,別府=湯けむり券,2016-07,1,3000,2016-08-31\nOITA2016,おおいた宿泊券,2016-07,3,15000,2016-08-10\n"; buf.String() != want {
		t.Errorf("claim CSV:\n%s", buf.String())
	}
	cb, err := sterad.ReadVoucherClaimCSV(bytes.NewReader(buf.Bytes()), sterad.JPY)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cb, claims) {
		t.Errorf("claims parsed back: %+v, want %+v", cb, claims)
	}

	for name, in := range map[string]string{
		"no header":    "0000000001,OITA2016\n",
		"a bad date":   strings.Join(sterad.VoucherLogHeader, ",") + "\n0000000001,OITA2016,2016-13-01,1,1,R,5000,2016-07-22,2016-07-20,2016-07-22,true,,\n",
		"a bad amount": strings.Join(sterad.VoucherLogHeader, ",") + "\n0000000001,OITA2016,2016-07-20,1,1,R,5000.5,2016-07-22,2016-07-20,2016-07-22,true,,\n",
	} {
		if _, err := sterad.ReadVoucherLogCSV(strings.NewReader(in), sterad.JPY); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}
