package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sterad/sterad"
)

// Version 1.1: the check-out with split tender, the open holds and the
// voucher report (interface.md).

// CheckoutRequest is the body of POST /v1/checkouts.
type CheckoutRequest struct {
	Reference  string              `json:"reference"`
	Original   string              `json:"original,omitempty"` // the pre-authorization to complete
	Terminal   string              `json:"terminal,omitempty"` // or the terminal to read the card at
	Stay       *StayInput          `json:"stay,omitempty"`
	Guests     int                 `json:"guests,omitempty"`
	Booking    string              `json:"booking,omitempty"`
	RoomPlan   FlexAmount          `json:"room_plan"`
	Other      FlexAmount          `json:"other,omitempty"`
	BathingTax FlexAmount          `json:"bathing_tax,omitempty"`
	Vouchers   []sterad.VoucherUse `json:"vouchers,omitempty"`
}

// Domain converts the request for ReservationPaymentService.Checkout.
func (r CheckoutRequest) Domain() sterad.CheckoutRequest {
	d := sterad.CheckoutRequest{Reference: r.Reference, Original: r.Original, Terminal: r.Terminal, Guests: r.Guests, Booking: r.Booking,
		RoomPlan: string(r.RoomPlan), Other: string(r.Other), BathingTax: string(r.BathingTax), Vouchers: r.Vouchers}
	if r.Stay != nil {
		d.CheckIn, d.CheckOut = r.Stay.CheckIn, r.Stay.CheckOut
	}
	return d
}

// AppliedVoucher is one voucher a check-out took.
type AppliedVoucher struct {
	Program      string `json:"program"`
	Number       string `json:"number"`
	Applied      string `json:"applied"`
	HolderReason string `json:"holder_reason,omitempty"`
}

// CheckoutResult is the answer of POST /v1/checkouts.
type CheckoutResult struct {
	Reference       string           `json:"reference"`
	VouchersApplied string           `json:"vouchers_applied"`
	DepositsApplied string           `json:"deposits_applied"`
	CardAmount      string           `json:"card_amount"`
	Refund          string           `json:"refund"`
	Transaction     *Transaction     `json:"transaction"`
	Refunds         []*Transaction   `json:"refunds"`
	Vouchers        []AppliedVoucher `json:"vouchers"`
}

// CheckoutView converts a domain check-out result.
func CheckoutView(r *sterad.CheckoutResult) *CheckoutResult {
	v := &CheckoutResult{Reference: r.Reference, VouchersApplied: r.VouchersApplied.String(), DepositsApplied: r.DepositsApplied.String(),
		CardAmount: r.CardAmount.String(), Refund: r.Refund.String(), Refunds: []*Transaction{}, Vouchers: []AppliedVoucher{}}
	if r.Transaction != nil {
		v.Transaction = View(r.Transaction, false)
	}
	for _, t := range r.Refunds {
		v.Refunds = append(v.Refunds, View(t, false))
	}
	for _, a := range r.Vouchers {
		v.Vouchers = append(v.Vouchers, AppliedVoucher{Program: a.Program, Number: a.Number, Applied: a.Applied.String(), HolderReason: a.HolderReason})
	}
	return v
}

// Hold is an open pre-authorization as GET /v1/holds shows it.
type Hold struct {
	sterad.Hold
	Age string `json:"age"` // "8d2h" style: days and hours
}

func holdAge(d time.Duration) string {
	days := int(d / (24 * time.Hour))
	hours := int(d % (24 * time.Hour) / time.Hour)
	return strconv.Itoa(days) + "d" + strconv.Itoa(hours) + "h"
}

// ParseAge parses an age: a Go duration ("168h", "90m") or whole days
// ("7d").
func ParseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if d, err := strconv.Atoi(n); err == nil && d >= 0 && d < 100000 {
			return time.Duration(d) * 24 * time.Hour, nil
		}
	} else if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return d, nil
	}
	return 0, sterad.Errorf(sterad.EInvalid, "invalid_duration", "older_than %q is not an age like 7d or 168h", s)
}

func (s *Server) handleCheckout(w http.ResponseWriter, r *http.Request) {
	var body CheckoutRequest
	if err := DecodeJSON(r, &body); err != nil {
		WriteError(w, err)
		return
	}
	req := body.Domain()
	req.IdempotencyKey = r.Header.Get("Idempotency-Key")
	req.Wait = r.URL.Query().Get("wait") != "false"
	res, replay, err := s.Payments.Checkout(r.Context(), req)
	if err != nil {
		WriteError(w, err)
		return
	}
	code := http.StatusCreated
	if replay {
		code = http.StatusOK
	}
	writeJSON(w, code, CheckoutView(res))
}

func (s *Server) handleHolds(w http.ResponseWriter, r *http.Request) {
	older, err := ParseAge(r.URL.Query().Get("older_than"))
	if err != nil {
		WriteError(w, err)
		return
	}
	hs, err := s.Payments.Holds(r.Context(), older)
	if err != nil {
		WriteError(w, err)
		return
	}
	out := make([]Hold, 0, len(hs))
	for _, h := range hs {
		out = append(out, Hold{Hold: h, Age: holdAge(h.Age)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"holds": out})
}

// handleVoucherReport serves GET /v1/reports/vouchers?month=YYYY-MM as
// JSON (the claims and the log), or with Accept: text/csv (or
// ?format=csv) the claim per program as CSV, the log with ?part=log.
func (s *Server) handleVoucherReport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rep, err := s.Payments.VoucherReport(r.Context(), q.Get("month"))
	if err != nil {
		WriteError(w, err)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "text/csv") || q.Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		if q.Get("part") == "log" {
			_ = sterad.WriteVoucherLogCSV(w, rep.Log)
			return
		}
		_ = sterad.WriteVoucherClaimCSV(w, rep.Claims)
		return
	}
	if rep.Claims == nil {
		rep.Claims = []sterad.VoucherClaim{}
	}
	writeJSON(w, http.StatusOK, rep)
}

// CheckoutOptions are the request options of Checkout.
type CheckoutOptions struct {
	IdempotencyKey string
}

// Checkout posts a check-out. It returns the answer and the HTTP status
// (201, 200 for an idempotent replay).
func (c *Client) Checkout(ctx context.Context, r CheckoutRequest, o CheckoutOptions) (*CheckoutResult, int, error) {
	h := http.Header{}
	if o.IdempotencyKey != "" {
		h.Set("Idempotency-Key", o.IdempotencyKey)
	}
	var out CheckoutResult
	code, err := c.Do(ctx, http.MethodPost, "/v1/checkouts", h, r, &out)
	if err != nil {
		return nil, code, err
	}
	return &out, code, nil
}

// Holds lists the open pre-authorizations at least olderThan old ("" for
// all; "7d", "168h").
func (c *Client) Holds(ctx context.Context, olderThan string) ([]Hold, error) {
	var out struct {
		Holds []Hold `json:"holds"`
	}
	path := "/v1/holds"
	if olderThan != "" {
		path += "?" + url.Values{"older_than": {olderThan}}.Encode()
	}
	_, err := c.Do(ctx, http.MethodGet, path, nil, nil, &out)
	return out.Holds, err
}

// VoucherReport returns the voucher report of a month (YYYY-MM) as JSON
// into out, or as CSV when out is an io.Writer and csv is set (part "log"
// for the log, else the claims).
func (c *Client) VoucherReport(ctx context.Context, month string, csv bool, part string, out any) error {
	h := http.Header{}
	if csv {
		h.Set("Accept", "text/csv")
	}
	q := url.Values{"month": {month}}
	if part != "" {
		q.Set("part", part)
	}
	_, err := c.Do(ctx, http.MethodGet, "/v1/reports/vouchers?"+q.Encode(), h, nil, out)
	return err
}
