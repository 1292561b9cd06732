package console

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/sterad/sterad"
)

// voucherRows is how many voucher lines the check-out form offers.
const voucherRows = 4

// coForm is the check-out form as typed, carried from the form to its
// confirmation in hidden fields.
type coForm struct {
	Reference, Original, Terminal string
	CheckIn, CheckOut             string
	Guests                        string
	Booking                       string
	RoomPlan, Other, BathingTax   string
	Vouchers                      []coVoucher
	Idem                          string
}

type coVoucher struct {
	Program, Number, Reason string
	NotHolder               bool // the guest is not the voucher's holder
}

func (s *Server) checkoutFormData(r *request, f coForm) (map[string]any, error) {
	holds, err := s.Payments.Holds(r.Context(), 0)
	if err != nil {
		return nil, err
	}
	for len(f.Vouchers) < voucherRows {
		f.Vouchers = append(f.Vouchers, coVoucher{})
	}
	return map[string]any{"F": f, "Holds": holds, "Terminals": s.Terminals.Terminals()}, nil
}

// checkoutForm shows the check-out: the bill (room plan, other charges,
// bathing tax), the travel vouchers handed over, and the card: the
// completion of an open pre-authorization or a sale at a terminal. The
// reservation's deposits are applied by the service.
func (s *Server) checkoutForm(w http.ResponseWriter, r *request) {
	if s.Payments == nil {
		s.fail(w, r, http.StatusNotFound, "err.notfound")
		return
	}
	f := coForm{Idem: randomToken(), Guests: "1", Booking: sterad.BookingDirect}
	today := sterad.DateOf(s.now().In(s.Location))
	f.CheckIn, f.CheckOut = today.AddDays(-1).String(), today.String()
	if id := r.URL.Query().Get("original"); id != "" {
		t, err := s.Transactions.Transaction(r.Context(), id)
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		f.Original, f.Reference = t.ID, t.Reference
		if t.Stay != nil {
			f.CheckIn, f.CheckOut = t.Stay.CheckIn.String(), t.Stay.CheckOut.String()
		}
	}
	data, err := s.checkoutFormData(r, f)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "checkout", data)
}

func readCheckoutForm(r *request) coForm {
	p := r.PostForm
	f := coForm{Reference: strings.TrimSpace(p.Get("reference")), Original: p.Get("original"), Terminal: p.Get("terminal"),
		CheckIn: p.Get("checkin"), CheckOut: p.Get("checkout"), Guests: strings.TrimSpace(p.Get("guests")), Booking: strings.TrimSpace(p.Get("booking")),
		RoomPlan: cleanAmount(p.Get("room_plan")), Other: cleanAmount(p.Get("other")), BathingTax: cleanAmount(p.Get("bathing_tax")), Idem: p.Get("idem")}
	if f.Original != "" {
		f.Terminal = ""
	}
	for i := 1; i <= voucherRows; i++ {
		n := strconv.Itoa(i)
		v := coVoucher{Program: strings.TrimSpace(p.Get("vp" + n)), Number: strings.TrimSpace(p.Get("vn" + n)),
			Reason: strings.TrimSpace(p.Get("vr" + n)), NotHolder: p.Get("vx"+n) == "on"}
		if v.Program != "" || v.Number != "" {
			f.Vouchers = append(f.Vouchers, v)
		}
	}
	return f
}

// coSummary is what the confirmation shows before anything is charged.
type coSummary struct {
	Total, RoomPlan, Other, BathingTax sterad.Amount
	Held                               sterad.Amount // the reservation's deposits still held
	Hold                               *sterad.Transaction
	Vouchers                           int
}

// checkout is the check-out in two steps: the first POST shows the bill,
// the vouchers, the deposits held and the hold to complete; only the
// second, with confirm=yes, asks the service (which applies the vouchers
// by their programs' rules, then the deposits, then charges the card).
func (s *Server) checkout(w http.ResponseWriter, r *request) {
	if s.Payments == nil {
		s.fail(w, r, http.StatusNotFound, "err.notfound")
		return
	}
	ctx := r.Context()
	f := readCheckoutForm(r)
	if len(f.Idem) < 16 {
		s.fail(w, r, http.StatusBadRequest, "err.form")
		return
	}
	guests, err := strconv.Atoi(f.Guests)
	if err != nil || guests < 1 {
		s.fail(w, r, http.StatusBadRequest, "co.badguests")
		return
	}
	req := sterad.CheckoutRequest{Reference: f.Reference, Original: f.Original, Terminal: f.Terminal, CheckIn: f.CheckIn, CheckOut: f.CheckOut,
		Guests: guests, Booking: f.Booking, RoomPlan: f.RoomPlan, Other: f.Other, BathingTax: f.BathingTax, IdempotencyKey: "console:" + f.Idem}
	for _, v := range f.Vouchers {
		req.Vouchers = append(req.Vouchers, sterad.VoucherUse{Program: v.Program, Number: v.Number, HolderMatches: !v.NotHolder, HolderReason: v.Reason})
	}
	if r.PostForm.Get("confirm") != "yes" {
		sum := coSummary{Vouchers: len(f.Vouchers)}
		parts := []struct {
			raw string
			to  *sterad.Amount
		}{{f.RoomPlan, &sum.RoomPlan}, {f.Other, &sum.Other}, {f.BathingTax, &sum.BathingTax}}
		sum.Total = sterad.NewAmount(0, sterad.JPY)
		for _, p := range parts {
			*p.to = sterad.NewAmount(0, sterad.JPY)
			if p.raw == "" {
				continue
			}
			a, err := sterad.ParseAmount(p.raw, sterad.JPY)
			if err != nil {
				s.failErr(w, r, err)
				return
			}
			*p.to = a
			sum.Total = sum.Total.Add(a)
		}
		sum.Held = sterad.NewAmount(0, sterad.JPY)
		if res, err := s.Reservations.Reservation(ctx, f.Reference); err == nil {
			for _, id := range res.Deposits {
				if d, err := s.Transactions.Transaction(ctx, id); err == nil {
					if x, ok := sterad.RefundableOf(d); ok {
						sum.Held = sum.Held.Add(x.Left())
					}
				}
			}
		}
		if f.Original != "" {
			t, err := s.Transactions.Transaction(ctx, f.Original)
			if err != nil {
				s.failErr(w, r, err)
				return
			}
			sum.Hold = t
		}
		s.render(w, r, http.StatusOK, "checkoutconfirm", map[string]any{"F": f, "Sum": sum})
		return
	}
	res, replay, err := s.Payments.Checkout(ctx, req)
	if res != nil && !replay {
		txn := ""
		if res.Transaction != nil {
			txn = res.Transaction.ID
		}
		s.audit(r, "checkout", txn, f.Reference, "vouchers="+res.VouchersApplied.String()+" deposits="+res.DepositsApplied.String()+
			" card="+res.CardAmount.String()+" refund="+res.Refund.String()+" voucher_count="+strconv.Itoa(len(res.Vouchers)))
	}
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "checkoutdone", map[string]any{"Res": res, "Replay": replay})
}

// keyedForm is the telephone-order page: in clear mode only, the card
// number typed masked (a password field); card-data-blind sterad takes no
// card number, and the page does not exist.
func (s *Server) keyedForm(w http.ResponseWriter, r *request) {
	if s.Blind {
		s.fail(w, r, http.StatusNotFound, "err.notfound")
		return
	}
	today := sterad.DateOf(s.now().In(s.Location))
	s.render(w, r, http.StatusOK, "keyed", map[string]any{"Idem": randomToken(), "Ops": deskOps,
		"Today": today.String(), "Tomorrow": today.AddDays(1).String()})
}

// keyed submits a keyed telephone order. The card number goes to the
// service and nowhere else: not to the audit log (the masked card of the
// transaction only), not to the log, not back into a page.
func (s *Server) keyed(w http.ResponseWriter, r *request) {
	if s.Blind {
		s.fail(w, r, http.StatusNotFound, "err.notfound")
		return
	}
	f := r.PostForm
	op := sterad.Op(f.Get("op"))
	if op != sterad.OpSale && op != sterad.OpPreauth {
		s.fail(w, r, http.StatusBadRequest, "err.op")
		return
	}
	idem := f.Get("idem")
	if len(idem) < 16 {
		s.fail(w, r, http.StatusBadRequest, "err.form")
		return
	}
	pan := strings.Map(func(c rune) rune {
		switch {
		case c >= '0' && c <= '9':
			return c
		case c >= '０' && c <= '９':
			return '0' + c - '０'
		}
		return -1
	}, f.Get("pan"))
	expiry := strings.ReplaceAll(strings.TrimSpace(f.Get("expiry")), "/", "")
	if len(expiry) == 4 { // typed MMYY as printed on the card: the service takes YYMM
		expiry = expiry[2:] + expiry[:2]
	}
	req := sterad.Request{Op: string(op), PAN: pan, Expiry: expiry, Amount: cleanAmount(f.Get("amount")),
		Reference: strings.TrimSpace(f.Get("reference")), IdempotencyKey: "console:" + idem}
	if op == sterad.OpPreauth {
		req.CheckIn, req.CheckOut = f.Get("checkin"), f.Get("checkout")
	}
	t, replay, err := s.Transactions.Submit(r.Context(), req)
	if t != nil && !replay {
		s.audit(r, "txn."+string(op)+".keyed", t.ID, t.Reference, "keyed amount="+t.Amount.String()+" card="+t.MaskedPAN)
	}
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	http.Redirect(w, r.Request, s.Prefix+"/txn/"+t.ID+"/live", http.StatusSeeOther)
}
