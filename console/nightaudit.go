package console

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sterad/sterad"
)

func (s *Server) nightAuditRoutes(mux *http.ServeMux) {
	p := s.Prefix
	mux.Handle("GET "+p+"/audit", s.auth(permAudit, s.auditBatch))
	mux.Handle("POST "+p+"/audit/close", s.auth(permAudit, s.startClose))
	mux.Handle("GET "+p+"/audit/close/{n}", s.auth(permAudit, s.closePage))
	mux.Handle("GET "+p+"/audit/close/{n}/events", s.auth(permAudit, s.closeEvents))
	mux.Handle("GET "+p+"/audit/batches", s.auth(permAudit, s.batchHistory))
	mux.Handle("GET "+p+"/audit/alerts", s.auth(permAudit, s.alerts))
	mux.Handle("GET "+p+"/audit/settlement", s.auth(permAudit, s.settlement))
	mux.Handle("GET "+p+"/audit/settlement.csv", s.auth(permAudit, s.settlementCSV))
	mux.Handle("GET "+p+"/audit/vouchers", s.auth(permAudit, s.vouchers))
	mux.Handle("GET "+p+"/audit/vouchers.csv", s.auth(permAudit, s.vouchersCSV))
}

// brandTotal is one card brand's counted transactions in a batch.
type brandTotal struct {
	Brand                     sterad.Brand
	Debits, Credits           int64
	DebitAmount, CreditAmount int64
}

func (s *Server) auditBatch(w http.ResponseWriter, r *request) {
	ctx := r.Context()
	b, err := s.Batches.Closing(ctx)
	if err == nil && b == nil {
		b, err = s.Batches.OpenBatch(ctx)
	}
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	txns, err := s.Transactions.Transactions(ctx, sterad.TransactionFilter{Batch: b.Number})
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	by := map[sterad.Brand]*brandTotal{}
	for _, t := range txns {
		if !t.Counted() {
			continue
		}
		bt := by[t.Brand]
		if bt == nil {
			bt = &brandTotal{Brand: t.Brand}
			by[t.Brand] = bt
		}
		if t.Op.Credit() {
			bt.Credits++
			bt.CreditAmount += t.Amount.Minor()
		} else {
			bt.Debits++
			bt.DebitAmount += t.Amount.Minor()
		}
	}
	var brands []*brandTotal
	for _, bt := range by {
		brands = append(brands, bt)
	}
	slices.SortFunc(brands, func(a, b *brandTotal) int { return cmp.Compare(a.Brand, b.Brand) })
	s.render(w, r, http.StatusOK, "audit", map[string]any{"Batch": b, "Brands": brands})
}

func (s *Server) startClose(w http.ResponseWriter, r *request) {
	run, err := s.Batches.StartClose(r.Context())
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.audit(r, "batch.close", "", strconv.Itoa(run.Batch), "")
	http.Redirect(w, r.Request, fmt.Sprintf("%s/audit/close/%d", s.Prefix, run.Batch), http.StatusSeeOther)
}

// closeState is what the close's live panel shows.
type closeState struct {
	Batch    *sterad.Batch
	Progress sterad.BatchProgress
	Running  bool
	Percent  int
	Ended    bool
}

func (s *Server) closeState(r *request, n int) (*closeState, error) {
	p, running := s.Batches.Progress(n)
	b, err := s.Batches.Batch(r.Context(), n)
	if err != nil {
		return nil, err
	}
	st := &closeState{Batch: b, Progress: p, Running: running}
	if p.ToUpload > 0 {
		st.Percent = min(100, p.Uploaded*100/p.ToUpload)
	}
	if b.State == sterad.BatchClosed {
		st.Percent, st.Ended = 100, true
	}
	if running && !p.Running && p.Error != "" { // the attempt failed; the loop retries later
		st.Ended = true
	}
	return st, nil
}

func (s *Server) closePage(w http.ResponseWriter, r *request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "err.notfound")
		return
	}
	st, err := s.closeState(r, n)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "close", st)
}

// closeEvents streams the close's progress until the batch is closed or
// the attempt failed.
func (s *Server) closeEvents(w http.ResponseWriter, r *request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "err.notfound")
		return
	}
	ctx := r.Context()
	sse, ok := startSSE(w)
	if !ok {
		return
	}
	last := ""
	for {
		st, err := s.closeState(r, n)
		if err != nil {
			return
		}
		html, err := s.partialHTML(r, "close", "progress", st)
		if err != nil {
			return
		}
		if html != last {
			sse.send("update", html)
			last = html
		}
		if st.Ended {
			sse.send("end", "")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.Poll): // polling the service; not business time
		}
	}
}

func (s *Server) batchHistory(w http.ResponseWriter, r *request) {
	bs, err := s.Batches.Batches(r.Context())
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	bs = slices.Clone(bs)
	slices.SortFunc(bs, func(a, b *sterad.Batch) int { return cmp.Compare(b.OpenedAt.UnixNano(), a.OpenedAt.UnixNano()) })
	s.render(w, r, http.StatusOK, "batches", map[string]any{"Batches": bs})
}

// alerts gathers what the night auditor must look at: offline approvals
// the issuer later declined, messages parked in the queue, transactions
// whose outcome is unknown and a close that failed.
func (s *Server) alerts(w http.ResponseWriter, r *request) {
	ctx := r.Context()
	declined, err := s.Status.Alerts(ctx)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	q, err := s.Queue.Queue(ctx)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	var parked []sterad.QueueItem
	for _, it := range q {
		if it.Parked {
			parked = append(parked, it)
		}
	}
	unknown, err := s.Transactions.Transactions(ctx, sterad.TransactionFilter{Status: sterad.StatusUnknown})
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	closing, err := s.Batches.Closing(ctx)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	var failedClose *sterad.Batch
	if closing != nil && closing.LastError != "" {
		failedClose = closing
	}
	// Holds: open pre-authorizations older than the limit (the money is
	// held on the guest's card for nothing, and the hold may lapse), and
	// those whose stay ends today or has ended: complete or void them.
	var old, due []sterad.Hold
	if s.Payments != nil {
		holds, err := s.Payments.Holds(ctx, 0)
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		for _, h := range holds {
			if h.Old {
				old = append(old, h)
			}
			if h.CheckoutToday || h.CheckoutPassed {
				due = append(due, h)
			}
		}
	}
	s.render(w, r, http.StatusOK, "alerts", map[string]any{"Declined": declined, "Parked": parked, "Queue": len(q),
		"Unknown": unknown, "FailedClose": failedClose, "OldHolds": old, "DueHolds": due,
		"None": len(declined) == 0 && len(parked) == 0 && len(unknown) == 0 && failedClose == nil && len(old) == 0 && len(due) == 0})
}

// payout is one bar of the payout chart.
type payout struct {
	Date string `json:"payout_date"`
	Paid int64  `json:"paid"`
}

// bar is a payout drawn: its place and size in the SVG.
type bar struct {
	payout
	X, Y, W, H int
	LabelX     int
}

// chart is the SVG of the coming payouts, drawn on the server.
type chart struct {
	Width, Height, Base int
	Bars                []bar
	Max                 int64
}

const chartW, chartH, chartTop, chartBottom = 720, 260, 20, 40

func drawChart(ps []payout) chart {
	c := chart{Width: chartW, Height: chartH, Base: chartH - chartBottom}
	for _, p := range ps {
		c.Max = max(c.Max, p.Paid)
	}
	if len(ps) == 0 {
		return c
	}
	slot := (chartW - 20) / len(ps)
	w := max(4, slot*6/10)
	for i, p := range ps {
		h := 0
		if c.Max > 0 && p.Paid > 0 {
			h = int(p.Paid * int64(c.Base-chartTop) / c.Max)
		}
		x := 10 + i*slot + (slot-w)/2
		c.Bars = append(c.Bars, bar{payout: p, X: x, Y: c.Base - h, W: w, H: h, LabelX: x + w/2})
	}
	return c
}

func (s *Server) reportRange(r *request) (string, string) {
	q := r.URL.Query()
	today := sterad.DateOf(s.now().In(s.Location))
	from, to := q.Get("from"), q.Get("to")
	if from == "" {
		from = today.AddDays(-6).String()
	}
	if to == "" {
		to = today.String()
	}
	return from, to
}

func (s *Server) settlement(w http.ResponseWriter, r *request) {
	from, to := s.reportRange(r)
	rep, err := s.Settlement.SettlementReport(r.Context(), from, to)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	var body struct {
		Currency string   `json:"currency"`
		Payouts  []payout `json:"payouts"`
	}
	b, err := json.Marshal(rep)
	if err == nil {
		err = json.Unmarshal(b, &body)
	}
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	slices.SortFunc(body.Payouts, func(a, b payout) int { return strings.Compare(a.Date, b.Date) })
	var total int64
	for _, p := range body.Payouts {
		total += p.Paid
	}
	s.render(w, r, http.StatusOK, "settlement", map[string]any{"From": from, "To": to, "Payouts": body.Payouts,
		"Chart": drawChart(body.Payouts), "Total": total})
}

func (s *Server) settlementCSV(w http.ResponseWriter, r *request) {
	from, to := s.reportRange(r)
	rep, err := s.Settlement.SettlementReport(r.Context(), from, to)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.audit(r, "settlement.csv", "", "", from+".."+to)
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="settlement-%s-%s.csv"`, from, to))
	if err := rep.WriteCSV(w); err != nil {
		s.Logger.Error("console: settlement CSV", "err", err)
	}
}

func (s *Server) voucherMonth(r *request) string {
	m := r.URL.Query().Get("month")
	if m == "" {
		m = s.now().In(s.Location).Format("2006-01")
	}
	return m
}

// vouchers is the month's voucher claim: per program, the vouchers taken
// and the total to claim, and the log of each voucher.
func (s *Server) vouchers(w http.ResponseWriter, r *request) {
	if s.Payments == nil {
		s.fail(w, r, http.StatusNotFound, "err.notfound")
		return
	}
	month := s.voucherMonth(r)
	rep, err := s.Payments.VoucherReport(r.Context(), month)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "vouchers", map[string]any{"Month": month, "Report": rep})
}

// vouchersCSV downloads the claim (part=claim, the default) or the log
// (part=log) of a month; the download is audited.
func (s *Server) vouchersCSV(w http.ResponseWriter, r *request) {
	if s.Payments == nil {
		s.fail(w, r, http.StatusNotFound, "err.notfound")
		return
	}
	month := s.voucherMonth(r)
	part := r.URL.Query().Get("part")
	if part == "" {
		part = "claim"
	}
	if part != "claim" && part != "log" {
		s.fail(w, r, http.StatusBadRequest, "err.form")
		return
	}
	rep, err := s.Payments.VoucherReport(r.Context(), month)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.audit(r, "vouchers.csv", "", "", part+" "+month)
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="vouchers-%s-%s.csv"`, part, month))
	if part == "log" {
		err = sterad.WriteVoucherLogCSV(w, rep.Log)
	} else {
		err = sterad.WriteVoucherClaimCSV(w, rep.Claims)
	}
	if err != nil {
		s.Logger.Error("console: voucher CSV", "err", err)
	}
}
