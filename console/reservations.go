package console

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/sterad/sterad"
)

func (s *Server) reservationRoutes(mux *http.ServeMux) {
	p := s.Prefix
	mux.Handle("GET "+p+"/reservations", s.auth(permReserve, s.reservations))
	mux.Handle("POST "+p+"/reservations/cardcheck", s.auth(permReserve, s.cardCheck))
	mux.Handle("GET "+p+"/reservations/r/{ref}", s.auth(permReserve, s.reservation))
	mux.Handle("POST "+p+"/reservations/r/{ref}/{action}", s.auth(permReserve, s.reservationAction))
}

// reservations shows the card check form, a look-up by reference and the
// vault: the cards (masked) or tokens kept for guaranteed reservations,
// and until when.
func (s *Server) reservations(w http.ResponseWriter, r *request) {
	ref := strings.TrimSpace(r.URL.Query().Get("ref"))
	if ref != "" {
		http.Redirect(w, r.Request, s.Prefix+"/reservations/r/"+urlPathEscape(ref), http.StatusSeeOther)
		return
	}
	vault, err := s.Vault.Vault(r.Context())
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	vault = slices.Clone(vault)
	slices.SortFunc(vault, func(a, b *sterad.VaultEntry) int { return a.RetainUntil.Compare(b.RetainUntil) })
	today := sterad.DateOf(s.now().In(s.Location))
	s.render(w, r, http.StatusOK, "reservations", map[string]any{
		"Vault": vault, "Terminals": s.Terminals.Terminals(), "Idem": randomToken(), "Blind": s.Blind,
		"Today": today.String(), "Tomorrow": today.AddDays(1).String(), "Released": r.URL.Query().Get("released"),
	})
}

// cardCheck starts a card check at a terminal for a guaranteed
// reservation: the card is read (or, card-data-blind, keyed) at the
// terminal, never typed here.
func (s *Server) cardCheck(w http.ResponseWriter, r *request) {
	f := r.PostForm
	idem := f.Get("idem")
	if len(idem) < 16 {
		s.fail(w, r, http.StatusBadRequest, "err.form")
		return
	}
	req := sterad.Request{Op: string(sterad.OpCardCheck), Terminal: f.Get("terminal"), Reference: strings.TrimSpace(f.Get("reference")),
		CheckIn: f.Get("checkin"), CheckOut: f.Get("checkout"), FirstNight: cleanAmount(f.Get("first_night")),
		IdempotencyKey: "console:" + idem}
	t, replay, err := s.Transactions.Submit(r.Context(), req)
	if t != nil && !replay {
		s.audit(r, "txn.cardcheck", t.ID, t.Reference, "terminal="+req.Terminal+" stay="+req.CheckIn+".."+req.CheckOut+" first_night="+req.FirstNight)
	}
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	http.Redirect(w, r.Request, s.Prefix+"/txn/"+t.ID+"/live", http.StatusSeeOther)
}

// resView is what the reservation page and its confirmations show.
type resView struct {
	Res      *sterad.Reservation
	Vault    *sterad.VaultEntry
	Token    string // masked
	NoShow   *charge
	Cancel   *charge
	Deposits []*sterad.Transaction
	Charges  []*sterad.Transaction
}

// charge is a fee computed from the reservation's recorded policy.
type charge struct {
	Fee    sterad.Amount
	Rule   string
	Card   sterad.Amount // what the card is charged (the fee above the deposits)
	Held   sterad.Amount // deposits held
	Refund sterad.Amount // deposits given back
	Err    string        // why it cannot be computed
}

func (s *Server) loadReservation(ctx context.Context, ref string) (*resView, error) {
	res, err := s.Reservations.Reservation(ctx, ref)
	if err != nil {
		return nil, err
	}
	v := &resView{Res: res, Token: maskToken(res.Token)}
	vault, err := s.Vault.Vault(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range vault {
		if e.Reference == ref {
			v.Vault = e
		}
	}
	var held []sterad.Refundable
	for _, id := range res.Deposits {
		d, err := s.Transactions.Transaction(ctx, id)
		if err != nil {
			return nil, err
		}
		v.Deposits = append(v.Deposits, d)
		if x, ok := sterad.RefundableOf(d); ok {
			held = append(held, x)
		}
	}
	for _, id := range res.Charges {
		if c, err := s.Transactions.Transaction(ctx, id); err == nil {
			v.Charges = append(v.Charges, c)
		}
	}
	open := res.State == sterad.ReservationGuaranteed
	switch {
	case !open:
		v.NoShow = &charge{Err: "res.notopen"}
		v.Cancel = &charge{Err: "res.notopen"}
	case res.Policy == nil:
		v.NoShow = &charge{Err: "res.nopolicy"}
		v.Cancel = &charge{Err: "res.nopolicy"}
	default:
		if fee, rule, err := res.Policy.NoShowFee(); err != nil {
			v.NoShow = &charge{Err: sterad.ErrorMessage(err)}
		} else {
			v.NoShow = &charge{Fee: fee, Rule: rule.String(), Card: fee}
		}
		today := sterad.DateOf(s.now().In(s.Location))
		fee, rule, err := res.Policy.Fee(res.Stay.CheckIn, today)
		if err == nil {
			var split sterad.CancellationSplit
			if split, err = sterad.SplitCancellation(fee, held); err == nil {
				v.Cancel = &charge{Fee: fee, Rule: rule.String(), Card: split.Card, Held: split.Deposits, Refund: split.Refund}
			}
		}
		if err != nil {
			v.Cancel = &charge{Err: sterad.ErrorMessage(err)}
		}
	}
	return v, nil
}

// maskToken shows a host token's last four characters only.
func maskToken(tok string) string {
	if len(tok) <= 4 {
		return strings.Repeat("•", len(tok))
	}
	return strings.Repeat("•", len(tok)-4) + tok[len(tok)-4:]
}

func (s *Server) reservation(w http.ResponseWriter, r *request) {
	v, err := s.loadReservation(r.Context(), r.PathValue("ref"))
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "reservation", map[string]any{"V": v, "Idem": randomToken()})
}

// reservationAction is a release, a no-show charge or a cancellation, in
// two steps: the first POST shows what will happen (the amount computed
// from the policy recorded with the reservation); only the second, with
// confirm=yes and the same amount, does it. If the amount changed in
// between (the day turned), the confirmation is shown again.
func (s *Server) reservationAction(w http.ResponseWriter, r *request) {
	action := r.PathValue("action")
	if action != "release" && action != "noshow" && action != "cancel" {
		s.fail(w, r, http.StatusNotFound, "err.notfound")
		return
	}
	ctx := r.Context()
	v, err := s.loadReservation(ctx, r.PathValue("ref"))
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	f := r.PostForm
	idem := f.Get("idem")
	if len(idem) < 16 {
		s.fail(w, r, http.StatusBadRequest, "err.form")
		return
	}
	var c *charge
	switch action {
	case "noshow":
		c = v.NoShow
	case "cancel":
		c = v.Cancel
	}
	if c != nil && c.Err != "" {
		s.fail(w, r, http.StatusConflict, "res.cannot", translate(r.lang, c.Err))
		return
	}
	shown := ""
	if c != nil {
		shown = c.Card.String() + "/" + c.Fee.String()
	}
	if f.Get("confirm") != "yes" || f.Get("shown") != shown {
		title := map[string]string{"noshow": "op.noshow", "cancel": "op.cancellation", "release": "res.releasetitle"}[action]
		s.render(w, r, http.StatusOK, "resconfirm", map[string]any{"V": v, "Action": action, "Title": title, "Charge": c, "Shown": shown,
			"Idem": idem, "Changed": f.Get("confirm") == "yes"})
		return
	}
	res := v.Res
	switch action {
	case "release":
		e, err := s.Vault.ReleaseVault(ctx, res.Reference)
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		s.audit(r, "vault.release", "", res.Reference, "card="+e.MaskedPAN)
		http.Redirect(w, r.Request, s.Prefix+"/reservations?released="+urlQueryEscape(res.Reference), http.StatusSeeOther)
	case "noshow", "cancel":
		req := sterad.Request{Reference: res.Reference, IdempotencyKey: "console:" + idem}
		if action == "noshow" {
			req.Op, req.Amount = string(sterad.OpNoShow), c.Fee.String()
			req.CheckIn, req.CheckOut = res.Stay.CheckIn.String(), res.Stay.CheckOut.String()
		} else {
			req.Op = string(sterad.OpCancellation)
		}
		t, replay, err := s.Transactions.Submit(ctx, req)
		if t != nil && !replay {
			s.audit(r, "txn."+req.Op, t.ID, res.Reference, "fee="+c.Fee.String()+" card="+c.Card.String()+" rule="+c.Rule)
		}
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		http.Redirect(w, r.Request, s.Prefix+"/txn/"+t.ID+"/live", http.StatusSeeOther)
	}
}
