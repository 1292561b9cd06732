package api

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sterad/sterad"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 64 << 10

// statusOf is the one table from domain error kinds to HTTP statuses.
var statusOf = map[string]int{
	sterad.EInvalid:     http.StatusBadRequest,
	sterad.ENotFound:    http.StatusNotFound,
	sterad.EConflict:    http.StatusConflict,
	sterad.EUnavailable: http.StatusServiceUnavailable,
	sterad.EInternal:    http.StatusInternalServerError,
	"unauthorized":      http.StatusUnauthorized,
}

// Server serves the HTTP API of the daemon: every route is registered
// here, each served by one of the services. Every service must be set.
type Server struct {
	Transactions sterad.TransactionService
	Terminals    sterad.TerminalService
	Queue        sterad.QueueService
	Batches      sterad.BatchService
	Vault        sterad.VaultService
	Reservations sterad.ReservationService
	Status       sterad.StatusService
	Settlement   sterad.SettlementService
	Store        sterad.StoreService // backup and key rotation, when set
	// Payments serves the version 1.1 check-outs, holds and voucher
	// report, when set.
	Payments sterad.ReservationPaymentService

	Token   string       // bearer token required on everything but /healthz
	Logger  *slog.Logger // default: discard
	Version string

	Metrics    http.Handler // GET /metrics, when set
	Simulators Simulators   // /v1/sim/… in serve --simulate, when set

	// Health says what is wrong for GET /healthz (default: nothing),
	// computed at most once per HealthTTL (default 1 s).
	Health    HealthFunc
	HealthTTL time.Duration
	Now       func() time.Time // default time.Now

	// AnswerTimeout bounds the writing of the answer of a request that
	// waits (a payment, a batch close, a queue flush), from when the
	// answer starts: the server's read and write timeouts do not cut
	// the wait itself. Zero: no bound.
	AnswerTimeout time.Duration

	healthCache healthCache
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	for pattern, h := range map[string]http.HandlerFunc{
		"POST /v1/transactions":            s.waitLong(s.handleCreateTransaction),
		"GET /v1/transactions":             s.handleTransactions,
		"GET /v1/transactions/{id}":        s.handleTransaction,
		"GET /v1/terminals":                s.handleTerminals,
		"GET /v1/queue":                    s.handleQueue,
		"POST /v1/queue/flush":             s.waitLong(s.handleFlush),
		"GET /v1/status":                   s.handleStatus,
		"GET /v1/batches":                  s.handleBatches,
		"GET /v1/batches/{n}":              s.handleBatch,
		"POST /v1/batches/close":           s.waitLong(s.handleCloseBatch),
		"GET /v1/vault":                    s.handleVault,
		"POST /v1/vault/purge":             s.handlePurge,
		"DELETE /v1/vault/{reference}":     s.handleReleaseVault,
		"GET /v1/reservations/{reference}": s.handleReservation,
		"GET /v1/reports/settlement":       s.handleSettlementReport,
		"GET /v1/openapi.json":             s.handleOpenAPI,
	} {
		mux.Handle(pattern, s.authorize(h))
	}
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.authorize(s.Metrics.ServeHTTP))
	}
	if s.Payments != nil {
		mux.Handle("POST /v1/checkouts", s.authorize(s.handleCheckout))
		mux.Handle("GET /v1/holds", s.authorize(s.handleHolds))
		mux.Handle("GET /v1/reports/vouchers", s.authorize(s.handleVoucherReport))
	}
	if s.Store != nil {
		mux.Handle("POST /v1/store/backup", s.authorize(s.handleBackup))
		mux.Handle("POST /v1/keys/rotate", s.authorize(s.handleRotate))
		mux.Handle("POST /v1/store/retention", s.authorize(s.handleRetention))
	}
	if s.Simulators != nil {
		s.routeSimulators(mux)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { WriteError(w, noRoute(r)) })
	return s.recoverPanics(mux)
}

func noRoute(r *http.Request) error {
	return sterad.Errorf(sterad.ENotFound, "no_route", "no such endpoint: %s %s", r.Method, r.URL.Path)
}

func (s *Server) authorize(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || s.Token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sterad"`)
			// The connection ends with this answer: one without the
			// token does not hold a slot (see ConnGuard).
			w.Header().Set("Connection", "close")
			WriteError(w, &sterad.Error{Kind: "unauthorized", Code: "unauthorized", Message: "missing or wrong bearer token"})
			return
		}
		markAuthenticated(r.Context())
		h(w, r)
	})
}

// recoverPanics turns a panic into a 500 without its value: a panic's
// text could hold request data.
func (s *Server) recoverPanics(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.Logger.Error("panic in API handler", "method", r.Method, "path", r.URL.Path)
				WriteError(w, errors.New("panic"))
			}
		}()
		h.ServeHTTP(w, r)
	})
}

func (s *Server) handleCreateTransaction(w http.ResponseWriter, r *http.Request) {
	var body TransactionRequest
	if err := DecodeJSON(r, &body); err != nil {
		WriteError(w, err)
		return
	}
	req := body.Domain()
	req.IdempotencyKey = r.Header.Get("Idempotency-Key")
	req.Wait = r.URL.Query().Get("wait") != "false"
	t, replay, err := s.Transactions.Submit(r.Context(), req)
	if err != nil {
		if t != nil {
			writeJSON(w, statusFor(err), ErrorBody{Error: ErrorDetail{Code: sterad.ErrorCode(err), Message: sterad.ErrorMessage(err), Transaction: View(t, false)}})
			return
		}
		WriteError(w, journalMessage(err))
		return
	}
	code := http.StatusCreated
	switch {
	case replay:
		code = http.StatusOK
	case t.Status == sterad.StatusPending && (!req.Wait || r.Context().Err() != nil):
		code = http.StatusAccepted
	}
	w.Header().Set("Location", "/v1/transactions/"+t.ID)
	writeJSON(w, code, View(t, false))
}

func (s *Server) handleTransaction(w http.ResponseWriter, r *http.Request) {
	t, err := s.Transactions.Transaction(r.Context(), r.PathValue("id"))
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, View(t, true))
}

func (s *Server) handleTransactions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := sterad.TransactionFilter{Reference: q.Get("reference"), Status: sterad.Status(q.Get("status")), Original: q.Get("original")}
	if v := q.Get("op"); v != "" {
		op, err := sterad.ParseOp(v)
		if err != nil {
			WriteError(w, err)
			return
		}
		f.Op = op
	}
	if v := q.Get("status"); v != "" && !validStatus(v) {
		WriteError(w, sterad.Errorf(sterad.EInvalid, "invalid_status", "unknown status %q", v))
		return
	}
	if v := q.Get("date"); v != "" {
		d, err := sterad.ParseDate(v)
		if err != nil {
			WriteError(w, err)
			return
		}
		f.Date = d
	}
	if v := q.Get("batch"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			WriteError(w, sterad.Errorf(sterad.EInvalid, "invalid_batch", "batch must be a number"))
			return
		}
		f.Batch = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			WriteError(w, sterad.Errorf(sterad.EInvalid, "invalid_limit", "limit must be a positive number"))
			return
		}
		f.Limit = n
	}
	switch q.Get("order") {
	case "", "oldest":
	case "newest":
		f.Newest = true
	default:
		WriteError(w, sterad.Errorf(sterad.EInvalid, "invalid_order", "order must be newest or oldest"))
		return
	}
	txns, err := s.Transactions.Transactions(r.Context(), f)
	if err != nil {
		WriteError(w, err)
		return
	}
	out := make([]*Transaction, 0, len(txns))
	for _, t := range txns {
		out = append(out, View(t, false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"transactions": out})
}

func validStatus(s string) bool {
	switch sterad.Status(s) {
	case sterad.StatusPending, sterad.StatusApproved, sterad.StatusDeclined, sterad.StatusStoodIn,
		sterad.StatusReversed, sterad.StatusVoided, sterad.StatusCancelled, sterad.StatusUnknown:
		return true
	}
	return false
}

func (s *Server) handleTerminals(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"terminals": s.terminals()})
}

// terminals lists the terminals: an empty list, never null.
func (s *Server) terminals() []sterad.TerminalInfo {
	if ts := s.Terminals.Terminals(); ts != nil {
		return ts
	}
	return []sterad.TerminalInfo{}
}

func (s *Server) handleQueue(w http.ResponseWriter, r *http.Request) {
	items, err := s.Queue.Queue(r.Context())
	if err != nil {
		WriteError(w, err)
		return
	}
	if items == nil {
		items = []sterad.QueueItem{}
	}
	// A stood-in transaction's encrypted card block waits in its item for
	// the advice: ciphertext sterad cannot open, and no business of a
	// client's.
	for i := range items {
		items[i].Block = nil
	}
	writeJSON(w, http.StatusOK, map[string]any{"queue": items, "summary": summarize(items)})
}

func summarize(items []sterad.QueueItem) QueueSummary {
	s := QueueSummary{Depth: len(items)}
	for _, it := range items {
		if it.Parked {
			s.Parked++
		}
	}
	return s
}

func (s *Server) handleFlush(w http.ResponseWriter, r *http.Request) {
	n, err := s.Queue.Flush(r.Context())
	if err != nil {
		WriteError(w, err)
		return
	}
	qc, err := s.Queue.QueueCounts(r.Context())
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, FlushResult{Sent: n, Depth: qc.Depth})
}

func (s *Server) handleBatches(w http.ResponseWriter, r *http.Request) {
	bs, err := s.Batches.Batches(r.Context())
	if err != nil {
		WriteError(w, err)
		return
	}
	out := make([]BatchView, 0, len(bs))
	for _, b := range bs {
		out = append(out, s.batchView(b))
	}
	writeJSON(w, http.StatusOK, map[string]any{"batches": out})
}

func (s *Server) batchView(b *sterad.Batch) BatchView {
	v := BatchView{Batch: b}
	if p, ok := s.Batches.Progress(b.Number); ok {
		v.Progress = &p
	}
	return v
}

func (s *Server) handleBatch(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 || n > 999999 {
		WriteError(w, sterad.Errorf(sterad.EInvalid, "invalid_batch", "batch must be a number 1–999999"))
		return
	}
	b, err := s.Batches.Batch(r.Context(), n)
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.batchView(b))
}

// handleCloseBatch closes the batch now. The gateway's batch loop runs the close
// (a close already under way is joined, not started again) and goes on if
// the client leaves; with ?wait=false the answer (202) names the batch to
// poll.
func (s *Server) handleCloseBatch(w http.ResponseWriter, r *http.Request) {
	run, err := s.Batches.StartClose(r.Context())
	if err != nil {
		WriteError(w, err)
		return
	}
	if r.URL.Query().Get("wait") == "false" {
		writeJSON(w, http.StatusAccepted, map[string]int{"batch": run.Batch})
		return
	}
	select {
	case <-run.Done():
	case <-r.Context().Done():
		return
	}
	b, cerr := run.Result()
	if cerr != nil {
		WriteError(w, cerr)
		return
	}
	writeJSON(w, http.StatusOK, s.batchView(b))
}

func (s *Server) handleVault(w http.ResponseWriter, r *http.Request) {
	entries, err := s.Vault.Vault(r.Context())
	if err != nil {
		WriteError(w, err)
		return
	}
	if entries == nil {
		entries = []*sterad.VaultEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"vault": entries})
}

func (s *Server) handlePurge(w http.ResponseWriter, r *http.Request) {
	res, err := s.Vault.Purge(r.Context())
	if err != nil {
		WriteError(w, err)
		return
	}
	if res.Vault == nil {
		res.Vault = []*sterad.VaultEntry{}
	}
	if res.Cards == nil {
		res.Cards = []string{}
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) handleReleaseVault(w http.ResponseWriter, r *http.Request) {
	e, err := s.Vault.ReleaseVault(r.Context(), r.PathValue("reference"))
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"released": e})
}

// handleReservation shows a reservation as stored: its stay, state, masked
// card, token and no-show charges.
func (s *Server) handleReservation(w http.ResponseWriter, r *http.Request) {
	res, err := s.Reservations.Reservation(r.Context(), r.PathValue("reference"))
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st := Status{Acquirer: s.Status.Acquirer(), Terminals: s.terminals(), Version: s.Version}
	// The queue's counts, not its items: a long outage may queue 100,000.
	qc, err := s.Queue.QueueCounts(r.Context())
	if err != nil {
		WriteError(w, err)
		return
	}
	st.Queue = QueueSummary{Depth: qc.Depth, Parked: qc.Parked}
	if b, err := s.Batches.OpenBatch(r.Context()); err == nil {
		st.Batch = b
	}
	// A batch left closing: a close under way, or failing and retried.
	if b, err := s.Batches.Closing(r.Context()); err == nil && b != nil {
		v := s.batchView(b)
		st.Closing = &v
	}
	alerts, err := s.Status.Alerts(r.Context())
	if err != nil {
		WriteError(w, err)
		return
	}
	st.Alerts = []*Transaction{}
	for _, t := range alerts {
		st.Alerts = append(st.Alerts, View(t, false))
	}
	writeJSON(w, http.StatusOK, st)
}

// DecodeJSON reads a JSON body strictly: one object, known fields only,
// each named once and in its own case, at most MaxBodyBytes. Errors are *sterad.Error of kind EInvalid and
// never quote the body (it may hold a card number).
func DecodeJSON(r *http.Request, v any) error {
	var body []byte
	var err error
	if ra, ok := r.Body.(*readAhead); ok {
		body, err = ra.unread()
	} else {
		body, err = io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	}
	if err != nil {
		return sterad.Errorf(sterad.EInvalid, "malformed_json", "could not read the request body")
	}
	if len(body) > MaxBodyBytes {
		return sterad.Errorf(sterad.EInvalid, "body_too_large", "request body exceeds %d bytes", MaxBodyBytes)
	}
	if err := checkKeys(body, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return sterad.Errorf(sterad.EInvalid, "malformed_json", "malformed JSON: %s", scrubJSONError(err))
	}
	if dec.More() {
		return sterad.Errorf(sterad.EInvalid, "malformed_json", "malformed JSON: more than one value in the body")
	}
	return nil
}

// scrubJSONError describes a decoding error without quoting input.
func scrubJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q must be a %s", typ.Field, typ.Type)
	case errors.Is(err, io.EOF):
		return "empty body"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field") {
		return strings.TrimPrefix(msg, "json: ")
	}
	if strings.HasPrefix(msg, "card:") || strings.HasPrefix(msg, "amount must") {
		return msg
	}
	return "not a valid request object"
}

// WriteError answers with the error's status and body. Internal errors
// are logged by the caller; their text is not shown.
func WriteError(w http.ResponseWriter, err error) {
	writeJSON(w, statusFor(err), ErrorBody{Error: ErrorDetail{Code: sterad.ErrorCode(err), Message: sterad.ErrorMessage(err)}})
}

func statusFor(err error) int {
	if code, ok := statusOf[sterad.ErrorKind(err)]; ok {
		return code
	}
	return http.StatusInternalServerError
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, code int, v any) { writeJSON(w, code, v) }

// writeJSON writes v compact, one line: a program reads it (the CLI
// indents what it prints).
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
