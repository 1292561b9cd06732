package console

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sterad/sterad"
)

func (s *Server) frontDeskRoutes(mux *http.ServeMux) {
	p := s.Prefix
	mux.Handle("GET "+p+"/desk", s.auth(permView, s.desk))
	mux.Handle("GET "+p+"/desk/terminals", s.auth(permView, s.terminalsPartial))
	mux.Handle("POST "+p+"/desk/pay", s.auth(permPay, s.pay))
	mux.Handle("GET "+p+"/txns", s.auth(permView, s.txns))
	mux.Handle("GET "+p+"/txn/{id}", s.auth(permView, s.slip))
	mux.Handle("GET "+p+"/txn/{id}/live", s.auth(permView, s.live))
	mux.Handle("GET "+p+"/txn/{id}/events", s.auth(permView, s.txnEvents))
	mux.Handle("GET "+p+"/desk/checkout", s.auth(permPay, s.checkoutForm))
	mux.Handle("POST "+p+"/desk/checkout", s.auth(permPay, s.checkout))
	mux.Handle("GET "+p+"/desk/keyed", s.auth(permPay, s.keyedForm))
	mux.Handle("POST "+p+"/desk/keyed", s.auth(permPay, s.keyed))
	mux.Handle("GET "+p+"/txn/{id}/{action}", s.auth(permPay, s.followUpForm))
	mux.Handle("POST "+p+"/txn/{id}/{action}", s.auth(permPay, s.followUp))
}

// deskOps are the operations the front desk starts at a terminal.
var deskOps = []sterad.Op{sterad.OpSale, sterad.OpPreauth}

func (s *Server) desk(w http.ResponseWriter, r *request) {
	s.render(w, r, http.StatusOK, "desk", map[string]any{
		"Terminals": s.Terminals.Terminals(),
		"Ops":       deskOps,
		"Idem":      randomToken(),
		"Today":     sterad.DateOf(s.now().In(s.Location)).String(),
		"Tomorrow":  sterad.DateOf(s.now().In(s.Location)).AddDays(1).String(),
		"Keyed":     !s.Blind,
		"Checkout":  s.Payments != nil,
	})
}

func (s *Server) terminalsPartial(w http.ResponseWriter, r *request) {
	s.renderPartial(w, r, "desk", "terminals", map[string]any{"Terminals": s.Terminals.Terminals()})
}

// cleanAmount takes what a clerk types ("¥12,800", "１２８００") to the
// decimal string the services expect.
func cleanAmount(s string) string {
	var b strings.Builder
	for _, c := range strings.TrimSpace(s) {
		switch {
		case c >= '０' && c <= '９':
			b.WriteRune('0' + c - '０')
		case c == ',' || c == '¥' || c == '￥' || c == '，' || c == ' ':
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// pay starts a sale or a pre-authorization at a terminal and sends the
// clerk to its live page. The form's idempotency key makes a second
// submission (a double click, a reload) return the same transaction.
func (s *Server) pay(w http.ResponseWriter, r *request) {
	f := r.PostForm
	op := sterad.Op(f.Get("op"))
	if !slices.Contains(deskOps, op) {
		s.fail(w, r, http.StatusBadRequest, "err.op")
		return
	}
	idem := f.Get("idem")
	if len(idem) < 16 {
		s.fail(w, r, http.StatusBadRequest, "err.form")
		return
	}
	req := sterad.Request{Op: string(op), Terminal: f.Get("terminal"), Amount: cleanAmount(f.Get("amount")),
		Reference: strings.TrimSpace(f.Get("reference")), IdempotencyKey: "console:" + idem}
	if op == sterad.OpPreauth {
		req.CheckIn, req.CheckOut = f.Get("checkin"), f.Get("checkout")
	}
	t, replay, err := s.Transactions.Submit(r.Context(), req)
	if t != nil && !replay {
		s.audit(r, "txn."+string(op), t.ID, t.Reference, "terminal="+req.Terminal+" amount="+t.Amount.String())
	}
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	http.Redirect(w, r.Request, s.Prefix+"/txn/"+t.ID+"/live", http.StatusSeeOther)
}

func (s *Server) live(w http.ResponseWriter, r *request) {
	t, err := s.Transactions.Transaction(r.Context(), r.PathValue("id"))
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "live", map[string]any{"Txn": t, "Ended": liveEnded(t)})
}

// liveEnded reports whether a transaction has nothing more to show at the
// terminal: final, done, or waiting in the queue for the acquirer.
func liveEnded(t *sterad.Transaction) bool {
	return t.Status.Final() || t.Step == sterad.StepDone || t.Step == sterad.StepQueued
}

// txnEvents streams a transaction's progress as server-sent events: an
// "update" event with the status panel's HTML whenever it changes, then
// "end" once the transaction has nothing more to show.
func (s *Server) txnEvents(w http.ResponseWriter, r *request) {
	id := r.PathValue("id")
	ctx := r.Context()
	t, err := s.Transactions.Transaction(ctx, id)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	sse, ok := startSSE(w)
	if !ok {
		return
	}
	last := ""
	for {
		ended := liveEnded(t)
		html, err := s.partialHTML(r, "live", "status", map[string]any{"Txn": t, "Ended": ended})
		if err != nil {
			return
		}
		if html != last {
			sse.send("update", html)
			last = html
		}
		if ended {
			sse.send("end", "")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.Poll): // polling the service; not business time
		}
		if t, err = s.Transactions.Transaction(ctx, id); err != nil {
			return
		}
	}
}

func (s *Server) partialHTML(r *request, name, tmpl string, data any) (string, error) {
	var buf bytes.Buffer
	if err := s.pages[name].t.ExecuteTemplate(&buf, tmpl, s.pageData(r, name, data)); err != nil {
		s.Logger.Error("console: render", "page", name, "err", err)
		return "", err
	}
	return buf.String(), nil
}

type sseWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func startSSE(w http.ResponseWriter) (*sseWriter, bool) {
	f, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return nil, false
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	f.Flush()
	return &sseWriter{w, f}, true
}

func (e *sseWriter) send(event, data string) {
	fmt.Fprintf(e.w, "event: %s\n", event)
	for _, line := range strings.Split(data, "\n") {
		fmt.Fprintf(e.w, "data: %s\n", line)
	}
	fmt.Fprint(e.w, "\n")
	e.f.Flush()
}

// txns lists today's transactions (or another day's), searched by ID,
// reference, last four digits, authorization code, status or operation.
func (s *Server) txns(w http.ResponseWriter, r *request) {
	q := r.URL.Query()
	day := sterad.DateOf(s.now().In(s.Location))
	if d := q.Get("date"); d != "" {
		if pd, err := sterad.ParseDate(d); err == nil {
			day = pd
		}
	}
	all, err := s.Transactions.Transactions(r.Context(), sterad.TransactionFilter{Date: day, Location: s.Location})
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	text := strings.ToLower(strings.TrimSpace(q.Get("q")))
	status := q.Get("status")
	var out []*sterad.Transaction
	for i := len(all) - 1; i >= 0; i-- { // newest first
		t := all[i]
		if status != "" && string(t.Status) != status {
			continue
		}
		if text != "" && !txnMatches(t, text) {
			continue
		}
		out = append(out, t)
	}
	data := map[string]any{"Txns": out, "Q": q.Get("q"), "StatusFilter": status, "Date": day.String(),
		"Statuses": []sterad.Status{sterad.StatusApproved, sterad.StatusDeclined, sterad.StatusPending, sterad.StatusCancelled,
			sterad.StatusVoided, sterad.StatusReversed, sterad.StatusStoodIn, sterad.StatusUnknown}}
	if r.Header.Get("HX-Request") != "" && r.Header.Get("HX-Target") == "rows" {
		s.renderPartial(w, r, "txns", "rows", data)
		return
	}
	s.render(w, r, http.StatusOK, "txns", data)
}

func txnMatches(t *sterad.Transaction, text string) bool {
	last4 := ""
	if n := len(t.MaskedPAN); n >= 4 {
		last4 = t.MaskedPAN[n-4:]
	}
	for _, f := range []string{t.ID, t.Reference, last4, t.AuthCode, t.RRN, string(t.Op), string(t.Status), t.Terminal, string(t.Brand)} {
		if f != "" && strings.Contains(strings.ToLower(f), text) {
			return true
		}
	}
	return false
}

func (s *Server) slip(w http.ResponseWriter, r *request) {
	t, err := s.Transactions.Transaction(r.Context(), r.PathValue("id"))
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "slip", map[string]any{"Txn": t, "Refundable": refundable(t), "Voidable": voidable(t),
		"Remaining": remaining(t), "OpenHold": sterad.IsOpenHold(t), "CheckOut": s.Payments != nil && sterad.IsOpenHold(t)})
}

func refundable(t *sterad.Transaction) bool {
	return t.IsDebit() && t.Status == sterad.StatusApproved && remaining(t).Value.Sign() > 0
}

func voidable(t *sterad.Transaction) bool {
	return t.Op.Financial() && (t.Status == sterad.StatusApproved || t.Status == sterad.StatusStoodIn) && t.VoidedBy == ""
}

// remaining is what may still be refunded of a debit.
func remaining(t *sterad.Transaction) sterad.Amount { return t.Amount.Sub(t.Refunded) }

// followUpForm shows the refund or void form of a transaction.
func (s *Server) followUpForm(w http.ResponseWriter, r *request) {
	action := r.PathValue("action")
	if !followUps[action] {
		s.fail(w, r, http.StatusNotFound, "err.notfound")
		return
	}
	t, err := s.Transactions.Transaction(r.Context(), r.PathValue("id"))
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	amount := remaining(t).String()
	if action == "incremental" {
		amount = ""
	}
	s.render(w, r, http.StatusOK, "followup", map[string]any{"Txn": t, "Action": action, "Confirm": false,
		"Amount": amount, "Idem": randomToken()})
}

// followUps are the operations on a transaction the slip offers.
var followUps = map[string]bool{"refund": true, "void": true, "incremental": true}

// followUp is a refund, a void or an incremental authorization in two
// steps: the first POST shows what will happen; only the second, with
// confirm=yes, submits it.
func (s *Server) followUp(w http.ResponseWriter, r *request) {
	action := r.PathValue("action")
	if !followUps[action] {
		s.fail(w, r, http.StatusNotFound, "err.notfound")
		return
	}
	orig, err := s.Transactions.Transaction(r.Context(), r.PathValue("id"))
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	f := r.PostForm
	amount := cleanAmount(f.Get("amount"))
	idem := f.Get("idem")
	if len(idem) < 16 {
		s.fail(w, r, http.StatusBadRequest, "err.form")
		return
	}
	if f.Get("confirm") != "yes" {
		s.render(w, r, http.StatusOK, "followup", map[string]any{"Txn": orig, "Action": action, "Confirm": true,
			"Amount": amount, "Idem": idem})
		return
	}
	req := sterad.Request{Op: action, Original: orig.ID, Reference: orig.Reference, IdempotencyKey: "console:" + idem}
	if action == "refund" || action == "incremental" {
		req.Amount = amount
	}
	t, replay, err := s.Transactions.Submit(r.Context(), req)
	if t != nil && !replay {
		s.audit(r, "txn."+action, t.ID, orig.Reference, "original="+orig.ID+" amount="+t.Amount.String())
	}
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	http.Redirect(w, r.Request, s.Prefix+"/txn/"+t.ID+"/live", http.StatusSeeOther)
}
