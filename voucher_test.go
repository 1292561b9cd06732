package sterad_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sterad/sterad"
)

// oita is the example voucher program of docs/configuration.md, the handling manual's おおいた宿泊券.
func oita(t *testing.T) sterad.VoucherProgram {
	t.Helper()
	return sterad.VoucherProgram{
		ID: "OITA2016", Name: "おおいた宿泊券", FaceValue: yen(5000), PerPersonNight: 4,
		MinPlanPerPersonNight: yen(5000), ValidFrom: date(t, "2016-07-19"), ValidTo: date(t, "2016-09-30"),
		DirectBookingsOnly: true, ClaimDay: 10, NumberPattern: "^[0-9]{10}$",
	}
}

func vouchers(numbers ...string) []sterad.VoucherUse {
	var v []sterad.VoucherUse
	for _, n := range numbers {
		v = append(v, sterad.VoucherUse{Program: "OITA2016", Number: n, HolderMatches: true})
	}
	return v
}

func numbered(n int) []sterad.VoucherUse {
	var ns []string
	for i := range n {
		ns = append(ns, "00000000"+string(rune('1'+i/10))+string(rune('0'+i%10)))
	}
	return vouchers(ns...)
}

// TestApplyVouchers plays the handling manual's own examples (Q3, Q5, Q7,
// Q8, Q9, Q10, Q12, Q15, Q16) and the rules of its section 2 (6)–(7).
func TestApplyVouchers(t *testing.T) {
	stay := func(in, out string) sterad.Stay { return sterad.Stay{CheckIn: date(t, in), CheckOut: date(t, out)} }
	aug1 := stay("2016-08-01", "2016-08-02")
	tests := []struct {
		name    string
		c       sterad.VoucherCheckout
		used    []string
		code    string // the refusal, "" when accepted
		applied int64
		rest    int64 // the bill minus the vouchers: what deposits and the card pay
	}{
		{"Q3: ¥12,800 takes two vouchers and ¥2,800 by card",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: numbered(2)},
			nil, "", 10000, 2800},
		{"Q3: three vouchers on ¥12,800 are refused (no change)",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: numbered(3)},
			nil, "voucher_exceeds_plan", 0, 0},
		{"Q9: ¥20,000 of vouchers on a ¥15,000 plan with ¥6,000 of drinks are refused",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(15000), Other: yen(6000)}, Vouchers: numbered(4)},
			nil, "voucher_exceeds_plan", 0, 0},
		{"Q9: three vouchers pay the plan, the drinks go to the card",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(15000), Other: yen(6000)}, Vouchers: numbered(3)},
			nil, "", 15000, 6000},
		{"Q12: the bathing tax is not paid by vouchers",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(14900), BathingTax: yen(150)}, Vouchers: numbered(3)},
			nil, "voucher_exceeds_plan", 0, 0},
		{"Q12: the bathing tax goes to the card",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(14900), BathingTax: yen(150)}, Vouchers: numbered(2)},
			nil, "", 10000, 5050},
		{"Q16: a ¥4,000 plan with ¥2,000 of room service is below the minimum",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(4000), Other: yen(2000)}, Vouchers: numbered(1)},
			nil, "voucher_plan_minimum", 0, 0},
		{"Q15: a child's plan of ¥5,000 a night may use vouchers",
			sterad.VoucherCheckout{Stay: aug1, Guests: 2, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(10000)}, Vouchers: numbered(2)},
			nil, "", 10000, 0},
		{"plan minimum per person per night: ¥9,999 for two guests",
			sterad.VoucherCheckout{Stay: aug1, Guests: 2, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(9999)}, Vouchers: numbered(1)},
			nil, "voucher_plan_minimum", 0, 0},
		{"Q8: a booking through a travel agent",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "agent", Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: numbered(1)},
			nil, "voucher_not_direct", 0, 0},
		{"a booking whose channel is not given is not direct",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: numbered(1)},
			nil, "voucher_not_direct", 0, 0},
		{"Q5: a day use has no night",
			sterad.VoucherCheckout{Stay: stay("2016-08-01", "2016-08-01"), Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(8000)}, Vouchers: numbered(1)},
			nil, "voucher_dates", 0, 0},
		{"a night before the program starts",
			sterad.VoucherCheckout{Stay: stay("2016-07-18", "2016-07-19"), Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: numbered(1)},
			nil, "voucher_dates", 0, 0},
		{"a night after the program ends",
			sterad.VoucherCheckout{Stay: stay("2016-10-01", "2016-10-02"), Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: numbered(1)},
			nil, "voucher_dates", 0, 0},
		{"the last night of the program, 30 September",
			sterad.VoucherCheckout{Stay: stay("2016-09-30", "2016-10-01"), Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: numbered(2)},
			nil, "", 10000, 2800},
		{"Q7: nights of 30 September and 1 October: vouchers pay the first only",
			sterad.VoucherCheckout{Stay: stay("2016-09-30", "2016-10-02"), Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(20000)}, Vouchers: numbered(2)},
			nil, "", 10000, 10000},
		{"Q7: three vouchers are more than the first night's ¥10,000",
			sterad.VoucherCheckout{Stay: stay("2016-09-30", "2016-10-02"), Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(20000)}, Vouchers: numbered(3)},
			nil, "voucher_exceeds_plan", 0, 0},
		{"Q7: the cap counts the nights inside the dates only",
			sterad.VoucherCheckout{Stay: stay("2016-09-30", "2016-10-02"), Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(60000)}, Vouchers: numbered(5)},
			nil, "voucher_cap", 0, 0},
		{"the cap: four per person per night",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(30000)}, Vouchers: numbered(5)},
			nil, "voucher_cap", 0, 0},
		{"the cap: exactly four per person per night",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(30000)}, Vouchers: numbered(4)},
			nil, "", 20000, 10000},
		{"the cap: two guests, two nights, sixteen vouchers",
			sterad.VoucherCheckout{Stay: stay("2016-08-01", "2016-08-03"), Guests: 2, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(90000)}, Vouchers: numbered(16)},
			nil, "", 80000, 10000},
		{"the cap: two guests, two nights, seventeen vouchers",
			sterad.VoucherCheckout{Stay: stay("2016-08-01", "2016-08-03"), Guests: 2, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(90000)}, Vouchers: numbered(17)},
			nil, "voucher_cap", 0, 0},
		{"a voucher already used",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: vouchers("0000000001", "0000000002")},
			[]string{"0000000002"}, "voucher_used", 0, 0},
		{"the same voucher twice",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: vouchers("0000000001", "0000000001")},
			nil, "voucher_used", 0, 0},
		{"the same voucher twice, once typed full-width",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: vouchers("0000000001", "００００００００01")},
			nil, "voucher_used", 0, 0},
		{"a malformed number",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: vouchers("12345")},
			nil, "voucher_number", 0, 0},
		{"a number with a letter",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: vouchers("000000000A")},
			nil, "voucher_number", 0, 0},
		{"a number inside a longer string",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: vouchers("x0000000001")},
			nil, "voucher_number", 0, 0},
		{"full-width digits and spaces, as a Japanese keyboard types them",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: vouchers("　０１２３４５６７８９ ")},
			nil, "", 5000, 7800},
		{"Q10: a voucher named for someone else needs a reason",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)},
				Vouchers: []sterad.VoucherUse{{Program: "OITA2016", Number: "0000000001"}}},
			nil, "voucher_holder_reason", 0, 0},
		{"Q10: a blank reason is no reason",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)},
				Vouchers: []sterad.VoucherUse{{Program: "OITA2016", Number: "0000000001", HolderReason: "  "}}},
			nil, "voucher_holder_reason", 0, 0},
		{"Q10: a present from the guest's parents",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)},
				Vouchers: []sterad.VoucherUse{{Program: "OITA2016", Number: "0000000001", HolderReason: "両親からのプレゼント"}}},
			nil, "", 5000, 7800},
		{"an unknown program",
			sterad.VoucherCheckout{Stay: aug1, Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)},
				Vouchers: []sterad.VoucherUse{{Program: "KUMAMOTO", Number: "0000000001", HolderMatches: true}}},
			nil, "voucher_program", 0, 0},
		{"no guests",
			sterad.VoucherCheckout{Stay: aug1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: numbered(1)},
			nil, "invalid_guests", 0, 0},
		{"no vouchers: the card pays all, whatever the booking",
			sterad.VoucherCheckout{Stay: aug1, Booking: "agent", Bill: sterad.Bill{RoomPlan: yen(12800), Other: yen(3000)}},
			nil, "", 0, 15800},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked []string
			used := func(program, number string) (bool, error) {
				asked = append(asked, number)
				for _, u := range tt.used {
					if program == "OITA2016" && u == number {
						return true, nil
					}
				}
				return false, nil
			}
			tt.c.Reference = "RSV-0042"
			res, err := sterad.ApplyVouchers([]sterad.VoucherProgram{oita(t)}, tt.c, used)
			if got := sterad.ErrorCode(err); got != tt.code {
				t.Fatalf("code %q (%v), want %q", got, err, tt.code)
			}
			if err != nil {
				want := sterad.EInvalid
				if tt.code == "voucher_used" {
					want = sterad.EConflict
				}
				if sterad.ErrorKind(err) != want {
					t.Errorf("kind %s, want %s", sterad.ErrorKind(err), want)
				}
				if strings.Contains(sterad.ErrorMessage(err), "%!") {
					t.Errorf("garbled message: %s", err)
				}
				t.Logf("refused: %s", err)
				return
			}
			if res.Applied.Minor() != tt.applied || res.Remainder.Minor() != tt.rest {
				t.Errorf("applied %s, rest %s; want ¥%d and ¥%d", res.Applied.Display(), res.Remainder.Display(), tt.applied, tt.rest)
			}
			if len(res.Vouchers) != len(tt.c.Vouchers) {
				t.Fatalf("%d vouchers applied of %d", len(res.Vouchers), len(tt.c.Vouchers))
			}
			for i, v := range res.Vouchers {
				if v.Applied.Minor() != 5000 {
					t.Errorf("voucher %s paid %s: a voucher pays its whole face value or nothing", v.Number, v.Applied)
				}
				if len(v.Number) != 10 {
					t.Errorf("voucher number %q is not canonical", v.Number)
				}
				if len(asked) <= i || asked[i] != v.Number {
					t.Errorf("voucher %s was not checked against the log (asked %q)", v.Number, asked)
				}
			}
		})
	}
}

func TestApplyVouchersReasonRecorded(t *testing.T) {
	c := sterad.VoucherCheckout{Reference: "RSV-0042", Stay: sterad.Stay{CheckIn: date(t, "2016-08-01"), CheckOut: date(t, "2016-08-02")},
		Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)},
		Vouchers: []sterad.VoucherUse{
			{Program: "OITA2016", Number: "0000000001", HolderMatches: true, HolderReason: "ignored"},
			{Program: "OITA2016", Number: "0000000002", HolderReason: " 母からの贈り物 "},
		}}
	res, err := sterad.ApplyVouchers([]sterad.VoucherProgram{oita(t)}, c, neverUsed)
	if err != nil {
		t.Fatal(err)
	}
	if res.Vouchers[0].HolderReason != "" || res.Vouchers[1].HolderReason != "母からの贈り物" || res.Vouchers[1].HolderMatches {
		t.Errorf("holder reasons: %+v", res.Vouchers)
	}
}

func TestApplyVouchersStoreError(t *testing.T) {
	boom := errors.New("disk on fire")
	c := sterad.VoucherCheckout{Stay: sterad.Stay{CheckIn: date(t, "2016-08-01"), CheckOut: date(t, "2016-08-02")},
		Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: numbered(1)}
	_, err := sterad.ApplyVouchers([]sterad.VoucherProgram{oita(t)}, c, func(string, string) (bool, error) { return false, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("a failing voucher log lookup: %v", err)
	}
}

// A card number typed into the voucher field never shows in the refusal.
func TestVoucherNumberHidesCardNumbers(t *testing.T) {
	p := oita(t)
	_, err := p.CheckNumber("4111 1111 1111 1111")
	if sterad.ErrorCode(err) != "voucher_number" {
		t.Fatalf("a card number as a voucher: %v", err)
	}
	if strings.Contains(err.Error(), "4111111111111111") || strings.Contains(err.Error(), "4111 1111 1111 1111") || !strings.Contains(err.Error(), "411111******1111") {
		t.Errorf("message shows the card number: %s", err)
	}
}

func TestPlanCheckout(t *testing.T) {
	// the example of docs/api.md: ¥12,800 plan, ¥3,000 other, two vouchers:
	// ¥10,000 of vouchers and ¥5,800 by card.
	c := sterad.VoucherCheckout{Reference: "RSV-0042", Stay: sterad.Stay{CheckIn: date(t, "2016-08-01"), CheckOut: date(t, "2016-08-02")},
		Guests: 1, Booking: sterad.BookingDirect, Bill: sterad.Bill{RoomPlan: yen(12800), Other: yen(3000)}, Vouchers: numbered(2)}
	plan, err := sterad.PlanCheckout([]sterad.VoucherProgram{oita(t)}, c, neverUsed, nil)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Split.Vouchers.Minor() != 10000 || plan.Split.Card.Minor() != 5800 || plan.Split.Deposits.Minor() != 0 {
		t.Errorf("split: %+v", plan.Split)
	}
	// With a ¥5,000 deposit: ¥800 by card.
	plan, err = sterad.PlanCheckout([]sterad.VoucherProgram{oita(t)}, c, neverUsed, []sterad.Refundable{charge("D1", 5000, 0)})
	if err != nil || plan.Split.Card.Minor() != 800 || plan.Split.Deposits.Minor() != 5000 {
		t.Errorf("with a deposit: %+v %v", plan.Split, err)
	}
	// A refused voucher refuses the check-out: nothing is split.
	c.Vouchers = numbered(3)
	if _, err := sterad.PlanCheckout([]sterad.VoucherProgram{oita(t)}, c, neverUsed, nil); sterad.ErrorCode(err) != "voucher_exceeds_plan" {
		t.Errorf("three vouchers: %v", err)
	}
}

func TestVoucherProgramValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*sterad.VoucherProgram)
		want []string
	}{
		{"the example", func(*sterad.VoucherProgram) {}, nil},
		{"no pattern", func(p *sterad.VoucherProgram) { p.NumberPattern = "" }, nil},
		{"a bad id", func(p *sterad.VoucherProgram) { p.ID = "OITA 2016" }, []string{"id:"}},
		{"no name", func(p *sterad.VoucherProgram) { p.Name = " " }, []string{"name: is required"}},
		{"a zero face value", func(p *sterad.VoucherProgram) { p.FaceValue = yen(0) }, []string{"face_value:"}},
		{"no cap", func(p *sterad.VoucherProgram) { p.PerPersonNight = 0 }, []string{"per_person_night:"}},
		{"dates reversed", func(p *sterad.VoucherProgram) { p.ValidTo = date(t, "2016-07-01") }, []string{"valid_to: 2016-07-01 is before valid_from 2016-07-19"}},
		{"no dates", func(p *sterad.VoucherProgram) { p.ValidFrom, p.ValidTo = sterad.Date{}, sterad.Date{} }, []string{"valid_from: is required", "valid_to: is required"}},
		{"a claim day of 0", func(p *sterad.VoucherProgram) { p.ClaimDay = 0 }, []string{"claim_day:"}},
		{"a bad pattern", func(p *sterad.VoucherProgram) { p.NumberPattern = "[0-9" }, []string{"number_pattern:"}},
		{"a negative minimum", func(p *sterad.VoucherProgram) { p.MinPlanPerPersonNight = yen(-1) }, []string{"min_plan_per_person_night:"}},
	}
	for _, tt := range tests {
		p := oita(t)
		tt.edit(&p)
		err := p.Validate()
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("%s: refused: %v", tt.name, err)
			}
			continue
		}
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want %q", tt.name, err, w)
			}
		}
	}
	dup := []sterad.VoucherProgram{oita(t), oita(t)}
	if err := sterad.ValidateVoucherPrograms(dup); err == nil || !strings.Contains(err.Error(), "[1] (OITA2016): id is also used by [0]") {
		t.Errorf("two programs with one id: %v", err)
	}
}

func TestClaimDue(t *testing.T) {
	p := oita(t)
	for _, tt := range []struct {
		month string
		day   int
		due   string
	}{
		{"2016-07", 10, "2016-08-10"}, // the manual: July's vouchers by 10 August
		{"2016-12", 10, "2017-01-10"},
		{"2016-12", 31, "2017-01-31"},
		{"2016-01", 31, "2016-02-29"}, // a shorter month: its last day
	} {
		p.ClaimDay = tt.day
		m, err := sterad.ParseYearMonth(tt.month)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.ClaimDue(m).String(); got != tt.due {
			t.Errorf("claim day %d for %s: due %s, want %s", tt.day, tt.month, got, tt.due)
		}
	}
	if _, err := sterad.ParseYearMonth("2016-13"); sterad.ErrorCode(err) != "invalid_month" {
		t.Errorf("month 13: %v", err)
	}
}

func neverUsed(string, string) (bool, error) { return false, nil }

// Without the voucher log, no voucher is accepted: "cannot tell" is never
// "not used".
func TestApplyVouchersNeedsTheLog(t *testing.T) {
	c := sterad.VoucherCheckout{Stay: sterad.Stay{CheckIn: date(t, "2016-08-01"), CheckOut: date(t, "2016-08-02")},
		Guests: 1, Booking: " Direct ", Bill: sterad.Bill{RoomPlan: yen(12800)}, Vouchers: numbered(1)}
	if _, err := sterad.ApplyVouchers([]sterad.VoucherProgram{oita(t)}, c, nil); sterad.ErrorKind(err) != sterad.EInternal {
		t.Fatalf("no voucher log: %v", err)
	}
	if res, err := sterad.ApplyVouchers([]sterad.VoucherProgram{oita(t)}, c, neverUsed); err != nil || res.Applied.Minor() != 5000 {
		t.Fatalf("booking %q: %v", c.Booking, err)
	}
}
