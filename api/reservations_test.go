package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
)

// payments is a fake ReservationPaymentService.
type payments struct {
	checkout func(context.Context, sterad.CheckoutRequest) (*sterad.CheckoutResult, bool, error)
	holds    func(context.Context, time.Duration) ([]sterad.Hold, error)
	report   func(context.Context, string) (sterad.VoucherReport, error)
}

func (p *payments) Checkout(ctx context.Context, r sterad.CheckoutRequest) (*sterad.CheckoutResult, bool, error) {
	return p.checkout(ctx, r)
}
func (p *payments) Holds(ctx context.Context, d time.Duration) ([]sterad.Hold, error) {
	return p.holds(ctx, d)
}
func (p *payments) VoucherReport(ctx context.Context, m string) (sterad.VoucherReport, error) {
	return p.report(ctx, m)
}

func yen(n int64) sterad.Amount { return sterad.NewAmount(n, sterad.JPY) }

func TestCheckoutRoute(t *testing.T) {
	var got sterad.CheckoutRequest
	p := &payments{checkout: func(_ context.Context, r sterad.CheckoutRequest) (*sterad.CheckoutResult, bool, error) {
		got = r
		if r.Reference == "BAD" {
			return nil, false, sterad.Errorf(sterad.EInvalid, "voucher_exceeds_plan", "no change is given")
		}
		c := approved("T1")
		c.Op = sterad.OpCompletion
		return &sterad.CheckoutResult{Reference: r.Reference, VouchersApplied: yen(10000), DepositsApplied: yen(0), CardAmount: yen(5800), Refund: yen(0),
			Transaction: c, Vouchers: []sterad.AppliedVoucher{{Program: "OITA2016", Number: "0000000001", Applied: yen(5000)}}}, r.IdempotencyKey == "again", nil
	}}
	s := server(&fake{t: t})
	s.Payments = p
	body := `{"reference": "RSV-0042", "original": "P1", "stay": {"checkin": "2016-08-01", "checkout": "2016-08-02"}, "guests": 1, "booking": "direct",
		"room_plan": "12800", "other": 3000, "vouchers": [{"program": "OITA2016", "number": "0000000001", "holder_matches": true}]}`
	a := serve(t, s, call{method: "POST", path: "/v1/checkouts", body: body})
	if a.Code != 201 {
		t.Fatalf("status %d: %s", a.Code, a.Body)
	}
	var res map[string]any
	a.decode(t, &res)
	if res["vouchers_applied"] != "10000" || res["deposits_applied"] != "0" || res["card_amount"] != "5800" ||
		res["transaction"].(map[string]any)["op"] != "completion" || res["vouchers"].([]any)[0].(map[string]any)["applied"] != "5000" {
		t.Fatalf("answer: %s", a.Body)
	}
	if got.Reference != "RSV-0042" || got.Original != "P1" || got.CheckIn != "2016-08-01" || got.RoomPlan != "12800" || got.Other != "3000" ||
		got.Guests != 1 || len(got.Vouchers) != 1 || !got.Vouchers[0].HolderMatches || !got.Wait {
		t.Fatalf("request: %+v", got)
	}
	h := http.Header{}
	h.Set("Idempotency-Key", "again")
	if a := serve(t, s, call{method: "POST", path: "/v1/checkouts", body: body, header: h}); a.Code != 200 {
		t.Fatalf("replay status %d", a.Code)
	}
	wantError(t, serve(t, s, call{method: "POST", path: "/v1/checkouts", body: `{"reference": "BAD", "room_plan": "1"}`}), 400, "voucher_exceeds_plan")
	wantError(t, serve(t, s, call{method: "POST", path: "/v1/checkouts", body: `{"reference": "X", "bogus": 1}`}), 400, "")
}

func TestHoldsRoute(t *testing.T) {
	var older time.Duration
	p := &payments{holds: func(_ context.Context, d time.Duration) ([]sterad.Hold, error) {
		older = d
		return []sterad.Hold{{ID: "P1", Reference: "RSV-1", Amount: yen(30000), Status: sterad.StatusApproved, CreatedAt: when, Age: 8*24*time.Hour + 2*time.Hour, AgeSeconds: 8*86400 + 7200, Old: true}}, nil
	}}
	s := server(&fake{t: t})
	s.Payments = p
	a := serve(t, s, call{method: "GET", path: "/v1/holds?older_than=7d"})
	if a.Code != 200 || older != 7*24*time.Hour || !strings.Contains(a.Body, `"age":"8d2h"`) || !strings.Contains(a.Body, `"reference":"RSV-1"`) || !strings.Contains(a.Body, `"amount":"30000"`) {
		t.Fatalf("holds: %d %v %s", a.Code, older, a.Body)
	}
	if a := serve(t, s, call{method: "GET", path: "/v1/holds?older_than=48h"}); a.Code != 200 || older != 48*time.Hour {
		t.Fatalf("48h: %d %v", a.Code, older)
	}
	wantError(t, serve(t, s, call{method: "GET", path: "/v1/holds?older_than=soon"}), 400, "invalid_duration")
}

func TestVoucherReportRoute(t *testing.T) {
	m, _ := sterad.ParseYearMonth("2016-08")
	rep := sterad.VoucherReport{Month: m,
		Claims: []sterad.VoucherClaim{{Program: "OITA2016", Name: "おおいた宿泊券", Month: m, Vouchers: 2, Total: yen(10000), Due: sterad.Date{Year: 2016, Month: 9, Day: 10}}},
		Log: []sterad.VoucherLogEntry{{Number: "0000000001", Program: "OITA2016", Reference: "RSV-1", Applied: yen(5000), Guests: 1, Nights: 1,
			StayDate: sterad.Date{Year: 2016, Month: 8, Day: 1}, UsedOn: sterad.Date{Year: 2016, Month: 8, Day: 2}, CheckIn: sterad.Date{Year: 2016, Month: 8, Day: 1}, CheckOut: sterad.Date{Year: 2016, Month: 8, Day: 2}}}}
	p := &payments{report: func(_ context.Context, month string) (sterad.VoucherReport, error) {
		if month != "2016-08" {
			return sterad.VoucherReport{}, sterad.Errorf(sterad.EInvalid, "invalid_month", "bad month")
		}
		return rep, nil
	}}
	s := server(&fake{t: t})
	s.Payments = p
	var got sterad.VoucherReport
	a := serve(t, s, call{method: "GET", path: "/v1/reports/vouchers?month=2016-08"})
	a.decode(t, &got)
	if a.Code != 200 || len(got.Claims) != 1 || got.Claims[0].Total.String() != "10000" || got.Month.String() != "2016-08" {
		t.Fatalf("JSON: %s", a.Body)
	}
	h := http.Header{}
	h.Set("Accept", "text/csv")
	a = serve(t, s, call{method: "GET", path: "/v1/reports/vouchers?month=2016-08", header: h})
	claims, err := sterad.ReadVoucherClaimCSV(strings.NewReader(a.Body), sterad.JPY)
	if err != nil || len(claims) != 1 || claims[0].Due.String() != "2016-09-10" || !strings.HasPrefix(a.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("claim CSV: %v %s", err, a.Body)
	}
	a = serve(t, s, call{method: "GET", path: "/v1/reports/vouchers?month=2016-08&part=log", header: h})
	log, err := sterad.ReadVoucherLogCSV(strings.NewReader(a.Body), sterad.JPY)
	if err != nil || len(log) != 1 || log[0].Number != "0000000001" {
		t.Fatalf("log CSV: %v %s", err, a.Body)
	}
	wantError(t, serve(t, s, call{method: "GET", path: "/v1/reports/vouchers?month=08-2016"}), 400, "invalid_month")
}

func TestCancellationView(t *testing.T) {
	c := approved("C1")
	c.Op, c.Amount, c.Fee, c.PolicyVersion, c.PolicyRow = sterad.OpCancellation, yen(1600), yen(3600), "2026-04", "7"
	v := api.View(c, false)
	if v.Amount != "3600" || v.CardAmount != "1600" || v.PolicyVersion != "2026-04" || v.PolicyRow != "7" {
		t.Fatalf("cancellation view: %+v", v)
	}
}
