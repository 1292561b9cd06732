package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
)

func TestAuthorization(t *testing.T) {
	f := &fake{t: t, TerminalsFn: func() []sterad.TerminalInfo { return nil }}
	s := server(f)
	for _, tt := range []struct {
		name   string
		header string
		want   int
	}{
		{"no header", "", 401},
		{"wrong token", "Bearer nope", 401},
		{"not a bearer", "Basic " + token, 401},
		{"token without scheme", token, 401},
		{"right token", "Bearer " + token, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.header != "" {
				h.Set("Authorization", tt.header)
			}
			a := serve(t, s, call{method: "GET", path: "/v1/terminals", header: h, noToken: true})
			if a.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", a.Code, tt.want, a.Body)
			}
			if tt.want == 401 {
				wantError(t, a, 401, "unauthorized")
				if a.Header.Get("WWW-Authenticate") != `Bearer realm="sterad"` {
					t.Errorf("WWW-Authenticate %q", a.Header.Get("WWW-Authenticate"))
				}
			}
		})
	}
}

// Every route but /healthz asks for the token, and the service is never
// called without it.
func TestEveryRouteNeedsTheToken(t *testing.T) {
	s := server(&fake{t: t}) // any call fails the test
	s.Metrics = http.NotFoundHandler()
	s.Simulators = sims{}
	for _, route := range []string{
		"POST /v1/transactions", "GET /v1/transactions", "GET /v1/transactions/T1", "GET /v1/terminals",
		"GET /v1/queue", "POST /v1/queue/flush", "GET /v1/status", "GET /v1/batches", "GET /v1/batches/1",
		"POST /v1/batches/close", "GET /v1/vault", "POST /v1/vault/purge", "DELETE /v1/vault/RSV-1",
		"GET /v1/reservations/RSV-1", "GET /v1/reports/settlement?from=2026-11-01&to=2026-11-30", "GET /metrics",
		"POST /v1/sim/acquirer/outage", "GET /v1/sim/terminals/FRONT001/state", "GET /v1/sim/else",
	} {
		method, path, _ := strings.Cut(route, " ")
		a := serve(t, s, call{method: method, path: path, body: `{"op":"sale"}`, noToken: true})
		wantError(t, a, 401, "unauthorized")
	}
	// With a server that has no token, nothing is allowed.
	s.Token = ""
	a := serve(t, s, call{method: "GET", path: "/v1/terminals", header: http.Header{"Authorization": {"Bearer "}}, noToken: true})
	wantError(t, a, 401, "unauthorized")
}

func TestHealthzNeedsNoToken(t *testing.T) {
	a := serve(t, server(&fake{t: t}), call{method: "GET", path: "/healthz", noToken: true})
	if a.Code != 200 || strings.TrimSpace(a.Body) != `{"status":"ok"}` {
		t.Fatalf("%d %s", a.Code, a.Body)
	}
}

func TestNoRoute(t *testing.T) {
	s := server(&fake{t: t})
	for _, route := range []string{"GET /v2/transactions", "DELETE /v1/transactions", "PUT /v1/batches/close", "GET /metrics", "GET /v1/sim/acquirer/stats"} {
		method, path, _ := strings.Cut(route, " ")
		e := wantError(t, serve(t, s, call{method: method, path: path}), 404, "no_route")
		if !strings.Contains(e.Message, path) {
			t.Errorf("%s: message %q", route, e.Message)
		}
	}
}

// The one table from error kinds to statuses holds on every route.
func TestErrorKindsToStatuses(t *testing.T) {
	for _, tt := range []struct {
		err    error
		status int
		code   string
	}{
		{sterad.Errorf(sterad.EInvalid, "invalid_amount", "bad amount"), 400, "invalid_amount"},
		{sterad.Errorf(sterad.ENotFound, "unknown_transaction", "unknown"), 404, "unknown_transaction"},
		{sterad.Errorf(sterad.EConflict, "terminal_busy", "busy"), 409, "terminal_busy"},
		{sterad.ErrStopping, 503, "stopping"},
		{sterad.Errorf(sterad.EInternal, "store", "disk full"), 500, "store"},
		{fmt.Errorf("wrapped: %w", sterad.Errorf(sterad.EConflict, "stale", "stale")), 409, "stale"},
		{errors.New("open /var/lib/sterad/data.db: permission denied"), 500, ""},
		{&sterad.Error{Kind: "unheard_of", Code: "odd", Message: "odd"}, 500, "odd"},
	} {
		f := &fake{t: t,
			TransactionFn:  func(context.Context, string) (*sterad.Transaction, error) { return nil, tt.err },
			TransactionsFn: func(context.Context, sterad.TransactionFilter) ([]*sterad.Transaction, error) { return nil, tt.err },
			QueueFn:        func(context.Context) ([]sterad.QueueItem, error) { return nil, tt.err },
			FlushFn:        func(context.Context) (int, error) { return 0, tt.err },
			BatchesFn:      func(context.Context) ([]*sterad.Batch, error) { return nil, tt.err },
			BatchFn:        func(context.Context, int) (*sterad.Batch, error) { return nil, tt.err },
			StartCloseFn:   func(context.Context) (*sterad.CloseRun, error) { return nil, tt.err },
			VaultFn:        func(context.Context) ([]*sterad.VaultEntry, error) { return nil, tt.err },
			PurgeFn:        func(context.Context) (*sterad.PurgeResult, error) { return nil, tt.err },
			ReleaseVaultFn: func(context.Context, string) (*sterad.VaultEntry, error) { return nil, tt.err },
			ReservationFn:  func(context.Context, string) (*sterad.Reservation, error) { return nil, tt.err },
			SettlementReportFn: func(context.Context, string, string) (sterad.SettlementReport, error) {
				return nil, tt.err
			},
			SubmitFn:    func(context.Context, sterad.Request) (*sterad.Transaction, bool, error) { return nil, false, tt.err },
			AcquirerFn:  func() sterad.LinkStatus { return sterad.LinkStatus{State: "offline", Address: "127.0.0.1:8583"} },
			TerminalsFn: func() []sterad.TerminalInfo { return nil },
		}
		s := server(f)
		for _, route := range []string{
			"POST /v1/transactions", "GET /v1/transactions", "GET /v1/transactions/T1", "GET /v1/queue",
			"POST /v1/queue/flush", "GET /v1/status", "GET /v1/batches", "GET /v1/batches/7", "POST /v1/batches/close",
			"GET /v1/vault", "POST /v1/vault/purge", "DELETE /v1/vault/RSV-1", "GET /v1/reservations/RSV-1",
			"GET /v1/reports/settlement?from=2026-11-01&to=2026-11-30",
		} {
			method, path, _ := strings.Cut(route, " ")
			a := serve(t, s, call{method: method, path: path, body: `{"op":"sale","amount":"100"}`})
			e := wantError(t, a, tt.status, tt.code)
			if tt.code == "" && (e.Code != "internal" || strings.Contains(a.Body, "permission") || strings.Contains(a.Body, "/var/lib")) {
				t.Errorf("%s: an internal error shows its text: %s", route, a.Body)
			}
		}
	}
}

func TestCreateTransaction(t *testing.T) {
	pending := func(id string) *sterad.Transaction {
		tx := approved(id)
		tx.Status, tx.ResponseCode, tx.AuthCode = sterad.StatusPending, "", ""
		return tx
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name     string
		path     string
		key      string
		ctx      context.Context
		tx       *sterad.Transaction
		replay   bool
		wantWait bool
		want     int
	}{
		{"final", "/v1/transactions", "", nil, approved("T1"), false, true, 201},
		{"replayed by its key", "/v1/transactions", "key-1", nil, approved("T1"), true, true, 200},
		{"replay of a pending one", "/v1/transactions?wait=false", "key-1", nil, pending("T1"), true, false, 200},
		{"not waited", "/v1/transactions?wait=false", "", nil, pending("T2"), false, false, 202},
		{"waited but still pending (a deferred refund)", "/v1/transactions", "", nil, pending("T3"), false, true, 201},
		{"waited, the client left", "/v1/transactions", "", cancelled, pending("T4"), false, true, 202},
		{"wait=true", "/v1/transactions?wait=true", "", nil, approved("T5"), false, true, 201},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got sterad.Request
			f := &fake{t: t, SubmitFn: func(_ context.Context, r sterad.Request) (*sterad.Transaction, bool, error) {
				got = r
				return tt.tx, tt.replay, nil
			}}
			h := http.Header{}
			if tt.key != "" {
				h.Set("Idempotency-Key", tt.key)
			}
			a := serve(t, server(f), call{method: "POST", path: tt.path, header: h, ctx: tt.ctx,
				body: `{"op":"sale","amount":12800,"currency":"JPY","reference":"RSV-0042","card":{"pan":"4111111111111111","expiry":"2812"},"stay":{"checkin":"2026-11-21","checkout":"2026-11-23"}}`})
			if a.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", a.Code, tt.want, a.Body)
			}
			if loc := a.Header.Get("Location"); loc != "/v1/transactions/"+tt.tx.ID {
				t.Errorf("Location %q", loc)
			}
			if got.Wait != tt.wantWait || got.IdempotencyKey != tt.key {
				t.Errorf("Submit got wait=%v key=%q", got.Wait, got.IdempotencyKey)
			}
			want := sterad.Request{Op: "sale", Amount: "12800", Currency: "JPY", Reference: "RSV-0042", PAN: "4111111111111111",
				Expiry: "2812", CheckIn: "2026-11-21", CheckOut: "2026-11-23", IdempotencyKey: tt.key, Wait: tt.wantWait}
			if got != want {
				got.PAN = sterad.PAN(got.PAN).String()
				t.Errorf("Submit got %+v", got)
			}
			var v api.Transaction
			a.decode(t, &v)
			if v.ID != tt.tx.ID || v.Status != string(tt.tx.Status) || v.Amount != "12800" || v.MaskedPAN != "411111******1111" || v.Events != nil {
				t.Errorf("answer %+v", v)
			}
			if strings.Contains(a.Body, "4111111111111111") {
				t.Errorf("the answer shows the card number: %s", a.Body)
			}
		})
	}
}

func TestCreateTransactionStrictJSON(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		want       string // in the message
	}{
		{"empty body", "", "empty body"},
		{"not an object", `"sale"`, "malformed JSON"},
		{"unknown field", `{"op":"sale","tip":"100"}`, `unknown field "tip"`},
		{"unknown card field", `{"op":"sale","card":{"pan":"4111111111111111","cvv":"123"}}`, "card:"},
		{"wrong type", `{"op":7}`, `field "op" must be a string`},
		{"amount as an object", `{"op":"sale","amount":{"yen":1}}`, "amount must"},
		{"two objects", `{"op":"sale"} {"op":"refund"}`, "more than one value"},
		{"truncated", `{"op":"sale","card":{"pan":"4111111111111111"`, "unexpected end"},
		{"syntax error", `{"op":"sale",}`, "syntax error at byte"},
		{"too large", `{"op":"sale","reference":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}`, "exceeds"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := serve(t, server(&fake{t: t}), call{method: "POST", path: "/v1/transactions", body: tt.body})
			code := "malformed_json"
			if tt.name == "too large" {
				code = "body_too_large"
			}
			e := wantError(t, a, 400, code)
			if !strings.Contains(e.Message, tt.want) {
				t.Errorf("message %q, want %q in it", e.Message, tt.want)
			}
			if strings.Contains(a.Body, "4111111111111111") {
				t.Errorf("the error quotes the card number: %s", a.Body)
			}
		})
	}
}

// A request that created a transaction before failing answers the error
// along with the transaction.
func TestCreateTransactionErrorWithTransaction(t *testing.T) {
	tx := approved("T9")
	tx.Status = sterad.StatusCancelled
	f := &fake{t: t, SubmitFn: func(context.Context, sterad.Request) (*sterad.Transaction, bool, error) {
		return tx, false, sterad.Errorf(sterad.EConflict, "terminal_busy", "terminal FRONT001 is busy")
	}}
	a := serve(t, server(f), call{method: "POST", path: "/v1/transactions", body: `{"op":"sale","terminal":"FRONT001","amount":"100"}`})
	e := wantError(t, a, 409, "terminal_busy")
	if e.Transaction == nil || e.Transaction.ID != "T9" || e.Transaction.Status != "cancelled" {
		t.Fatalf("error transaction %+v", e.Transaction)
	}
}

func TestGetTransaction(t *testing.T) {
	var asked string
	f := &fake{t: t, TransactionFn: func(_ context.Context, id string) (*sterad.Transaction, error) {
		asked = id
		if id != "T1" {
			return nil, sterad.Errorf(sterad.ENotFound, "unknown_transaction", "unknown transaction %q", id)
		}
		tx := approved("T1")
		tx.Original, tx.Token = "T0", "tok_1"
		return tx, nil
	}}
	s := server(f)
	a := serve(t, s, call{method: "GET", path: "/v1/transactions/T1"})
	if a.Code != 200 {
		t.Fatalf("%d %s", a.Code, a.Body)
	}
	var v api.Transaction
	a.decode(t, &v)
	if v.ID != "T1" || len(v.Events) != 2 || v.STAN != "000042" || v.Batch == nil || *v.Batch != "000003" ||
		v.Terminal == nil || *v.Terminal != "FRONT001" || v.Original == nil || *v.Original != "T0" || v.Token == nil || *v.Token != "tok_1" {
		t.Fatalf("view %+v", v)
	}
	wantError(t, serve(t, s, call{method: "GET", path: "/v1/transactions/T%2F2"}), 404, "unknown_transaction")
	if asked != "T/2" {
		t.Errorf("asked for %q", asked)
	}
}

func TestListTransactions(t *testing.T) {
	for _, tt := range []struct {
		query  string
		want   sterad.TransactionFilter
		status int
		code   string
	}{
		{"", sterad.TransactionFilter{}, 200, ""},
		{"reference=RSV-1&status=approved&original=T0&op=refund&date=2026-11-21&batch=3&limit=10",
			sterad.TransactionFilter{Reference: "RSV-1", Status: sterad.StatusApproved, Original: "T0", Op: sterad.OpRefund,
				Date: sterad.Date{Year: 2026, Month: 11, Day: 21}, Batch: 3, Limit: 10}, 200, ""},
		{"status=stood_in", sterad.TransactionFilter{Status: sterad.StatusStoodIn}, 200, ""},
		{"op=bogus", sterad.TransactionFilter{}, 400, "unknown_op"},
		{"status=fine", sterad.TransactionFilter{}, 400, "invalid_status"},
		{"date=21/11/2026", sterad.TransactionFilter{}, 400, "invalid_date"},
		{"batch=x", sterad.TransactionFilter{}, 400, "invalid_batch"},
		{"batch=0", sterad.TransactionFilter{}, 400, "invalid_batch"},
		{"limit=0", sterad.TransactionFilter{}, 400, "invalid_limit"},
		{"limit=ten", sterad.TransactionFilter{}, 400, "invalid_limit"},
	} {
		t.Run(tt.query, func(t *testing.T) {
			var got *sterad.TransactionFilter
			f := &fake{t: t, TransactionsFn: func(_ context.Context, fl sterad.TransactionFilter) ([]*sterad.Transaction, error) {
				got = &fl
				if fl.Reference == "" {
					return nil, nil
				}
				return []*sterad.Transaction{approved("T1"), approved("T2")}, nil
			}}
			a := serve(t, server(f), call{method: "GET", path: "/v1/transactions?" + tt.query})
			if tt.status != 200 {
				wantError(t, a, tt.status, tt.code)
				if got != nil {
					t.Errorf("the service was asked despite a bad query: %+v", *got)
				}
				return
			}
			if a.Code != 200 {
				t.Fatalf("%d %s", a.Code, a.Body)
			}
			if got == nil || *got != tt.want {
				t.Errorf("filter %+v, want %+v", got, tt.want)
			}
			var out struct {
				Transactions []*api.Transaction `json:"transactions"`
			}
			a.decode(t, &out)
			if out.Transactions == nil {
				t.Fatalf("transactions is not a list: %s", a.Body)
			}
			if tt.want.Reference != "" && (len(out.Transactions) != 2 || out.Transactions[1].ID != "T2" || out.Transactions[0].Events != nil) {
				t.Errorf("list %s", a.Body)
			}
		})
	}
}

func TestTerminals(t *testing.T) {
	f := &fake{t: t, TerminalsFn: func() []sterad.TerminalInfo {
		return []sterad.TerminalInfo{{ID: "FRONT001", Kind: "fixed", Transport: "serial", State: sterad.TerminalReady}}
	}}
	a := serve(t, server(f), call{method: "GET", path: "/v1/terminals"})
	var out struct {
		Terminals []sterad.TerminalInfo `json:"terminals"`
	}
	a.decode(t, &out)
	if a.Code != 200 || len(out.Terminals) != 1 || out.Terminals[0].ID != "FRONT001" || out.Terminals[0].State != "ready" {
		t.Fatalf("%d %s", a.Code, a.Body)
	}
}

func TestQueue(t *testing.T) {
	for _, tt := range []struct {
		name       string
		items      []sterad.QueueItem
		depth, prk int
	}{
		{"empty", nil, 0, 0},
		{"two, one parked", []sterad.QueueItem{{Seq: 1, TxnID: "T1", Kind: sterad.QueueReversal}, {Seq: 2, TxnID: "T2", Kind: sterad.QueueAdvice, Parked: true}}, 2, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fake{t: t, QueueFn: func(context.Context) ([]sterad.QueueItem, error) { return tt.items, nil }}
			a := serve(t, server(f), call{method: "GET", path: "/v1/queue"})
			var out struct {
				Queue   []sterad.QueueItem `json:"queue"`
				Summary api.QueueSummary   `json:"summary"`
			}
			a.decode(t, &out)
			if a.Code != 200 || out.Queue == nil || len(out.Queue) != tt.depth || out.Summary != (api.QueueSummary{Depth: tt.depth, Parked: tt.prk}) {
				t.Fatalf("%d %s", a.Code, a.Body)
			}
		})
	}
}

func TestFlush(t *testing.T) {
	f := &fake{t: t,
		FlushFn: func(context.Context) (int, error) { return 3, nil },
		QueueFn: func(context.Context) ([]sterad.QueueItem, error) {
			return []sterad.QueueItem{{Seq: 9, TxnID: "T9", Kind: sterad.QueueRequest}}, nil
		},
	}
	s := server(f)
	a := serve(t, s, call{method: "POST", path: "/v1/queue/flush"})
	var out api.FlushResult
	a.decode(t, &out)
	if a.Code != 200 || out != (api.FlushResult{Sent: 3, Depth: 1}) {
		t.Fatalf("%d %s", a.Code, a.Body)
	}
	// Reading the queue after a flush fails.
	f.QueueFn = func(context.Context) ([]sterad.QueueItem, error) { return nil, sterad.ErrStopping }
	wantError(t, serve(t, s, call{method: "POST", path: "/v1/queue/flush"}), 503, "stopping")
}

func TestBatches(t *testing.T) {
	f := &fake{t: t,
		BatchesFn: func(context.Context) ([]*sterad.Batch, error) {
			return []*sterad.Batch{{Number: 1, State: sterad.BatchClosed}, {Number: 2, State: sterad.BatchClosing}, {Number: 3, State: sterad.BatchOpen}}, nil
		},
		ProgressFn: func(n int) (sterad.BatchProgress, bool) {
			return sterad.BatchProgress{Batch: 2, Phase: "uploading", Uploaded: 1, ToUpload: 4, Running: true}, n == 2
		},
	}
	a := serve(t, server(f), call{method: "GET", path: "/v1/batches"})
	var out struct {
		Batches []api.BatchView `json:"batches"`
	}
	a.decode(t, &out)
	if a.Code != 200 || len(out.Batches) != 3 || out.Batches[0].Progress != nil || out.Batches[2].Progress != nil ||
		out.Batches[1].Progress == nil || out.Batches[1].Progress.ToUpload != 4 || out.Batches[1].State != "closing" {
		t.Fatalf("%d %s", a.Code, a.Body)
	}
	// None yet: a list all the same.
	f.BatchesFn = func(context.Context) ([]*sterad.Batch, error) { return nil, nil }
	if a := serve(t, server(f), call{method: "GET", path: "/v1/batches"}); a.Code != 200 || !strings.Contains(a.Body, `"batches":[]`) {
		t.Fatalf("%d %s", a.Code, a.Body)
	}
}

func TestBatch(t *testing.T) {
	var asked []int
	f := &fake{t: t, BatchFn: func(_ context.Context, n int) (*sterad.Batch, error) {
		asked = append(asked, n)
		if n != 7 {
			return nil, sterad.Errorf(sterad.ENotFound, "unknown_batch", "unknown batch %06d", n)
		}
		return &sterad.Batch{Number: 7, State: sterad.BatchOpen}, nil
	}}
	s := server(f)
	for _, tt := range []struct {
		path   string
		status int
		code   string
	}{
		{"/v1/batches/7", 200, ""},
		{"/v1/batches/000007", 200, ""},
		{"/v1/batches/8", 404, "unknown_batch"},
		{"/v1/batches/999999", 404, "unknown_batch"},
		{"/v1/batches/0", 400, "invalid_batch"},
		{"/v1/batches/1000000", 400, "invalid_batch"},
		{"/v1/batches/-1", 400, "invalid_batch"},
		{"/v1/batches/seven", 400, "invalid_batch"},
	} {
		a := serve(t, s, call{method: "GET", path: tt.path})
		if tt.status != 200 {
			wantError(t, a, tt.status, tt.code)
			continue
		}
		var v api.BatchView
		a.decode(t, &v)
		if a.Code != 200 || v.Batch == nil || v.Number != 7 || v.Progress != nil {
			t.Errorf("%s: %d %s", tt.path, a.Code, a.Body)
		}
	}
	if fmt.Sprint(asked) != "[7 7 8 999999]" {
		t.Errorf("asked for batches %v", asked)
	}
}

func TestCloseBatch(t *testing.T) {
	closed := &sterad.Batch{Number: 4, State: sterad.BatchClosed}
	failing := &sterad.Batch{Number: 4, State: sterad.BatchClosing, Attempts: 1, LastError: "host unavailable"}
	for _, tt := range []struct {
		name   string
		path   string
		b      *sterad.Batch
		err    error
		status int
		code   string
	}{
		{"closed", "/v1/batches/close", closed, nil, 200, ""},
		{"the host is away", "/v1/batches/close", failing, sterad.Errorf(sterad.EUnavailable, "host_unavailable", "the acquirer is not reachable"), 503, "host_unavailable"},
		{"the totals disagree", "/v1/batches/close", failing, sterad.Errorf(sterad.EConflict, "out_of_balance", "totals differ"), 409, "out_of_balance"},
		{"not waited", "/v1/batches/close?wait=false", nil, nil, 202, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			run := sterad.NewCloseRun(4)
			f := &fake{t: t, StartCloseFn: func(context.Context) (*sterad.CloseRun, error) {
				if tt.status != 202 {
					run.Finish(tt.b, tt.err)
				}
				return run, nil
			}}
			a := serve(t, server(f), call{method: "POST", path: tt.path})
			switch tt.status {
			case 200:
				var v api.BatchView
				a.decode(t, &v)
				if a.Code != 200 || v.Batch == nil || v.Number != 4 || v.State != "closed" {
					t.Fatalf("%d %s", a.Code, a.Body)
				}
			case 202:
				if a.Code != 202 || strings.Join(strings.Fields(a.Body), "") != `{"batch":4}` {
					t.Fatalf("%d %s", a.Code, a.Body)
				}
			default:
				wantError(t, a, tt.status, tt.code)
			}
		})
	}
}

// A client that leaves while the batch closes gets nothing; the close
// goes on.
func TestCloseBatchClientLeaves(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	run := sterad.NewCloseRun(4)
	f := &fake{t: t, StartCloseFn: func(context.Context) (*sterad.CloseRun, error) {
		cancel()
		return run, nil
	}}
	a := serve(t, server(f), call{method: "POST", path: "/v1/batches/close", ctx: ctx})
	if a.Body != "" {
		t.Fatalf("answered %d %s", a.Code, a.Body)
	}
	select {
	case <-run.Done():
		t.Fatal("the close ended")
	default:
	}
}

func TestVault(t *testing.T) {
	entries := []*sterad.VaultEntry{{Reference: "RSV-1", MaskedPAN: "411111******1111", Brand: "visa", Token: "tok_1", Stay: sterad.Stay{CheckIn: sterad.Date{Year: 2026, Month: 11, Day: 21}, CheckOut: sterad.Date{Year: 2026, Month: 11, Day: 23}}, CreatedAt: when, RetainUntil: when}}
	for _, tt := range []struct {
		name    string
		entries []*sterad.VaultEntry
		want    string
	}{
		{"empty", nil, `"vault":[]`},
		{"one", entries, `"reference":"RSV-1"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fake{t: t, VaultFn: func(context.Context) ([]*sterad.VaultEntry, error) { return tt.entries, nil }}
			a := serve(t, server(f), call{method: "GET", path: "/v1/vault"})
			if a.Code != 200 || !strings.Contains(a.Body, tt.want) {
				t.Fatalf("%d %s", a.Code, a.Body)
			}
		})
	}
}

func TestPurge(t *testing.T) {
	f := &fake{t: t, PurgeFn: func(context.Context) (*sterad.PurgeResult, error) {
		return &sterad.PurgeResult{Vault: []*sterad.VaultEntry{{Reference: "RSV-1", MaskedPAN: "411111******1111", Brand: "visa", Stay: sterad.Stay{CheckIn: sterad.Date{Year: 2026, Month: 11, Day: 21}, CheckOut: sterad.Date{Year: 2026, Month: 11, Day: 23}}}}, Cards: []string{"T1", "T2"}}, nil
	}}
	a := serve(t, server(f), call{method: "POST", path: "/v1/vault/purge"})
	var out sterad.PurgeResult
	a.decode(t, &out)
	if a.Code != 200 || len(out.Vault) != 1 || out.Vault[0].Reference != "RSV-1" || fmt.Sprint(out.Cards) != "[T1 T2]" {
		t.Fatalf("%d %s", a.Code, a.Body)
	}
}

func TestReleaseVault(t *testing.T) {
	f := &fake{t: t, ReleaseVaultFn: func(_ context.Context, ref string) (*sterad.VaultEntry, error) {
		switch ref {
		case "RSV 1":
			return &sterad.VaultEntry{Reference: ref, MaskedPAN: "411111******1111", Brand: "visa", Stay: sterad.Stay{CheckIn: sterad.Date{Year: 2026, Month: 11, Day: 21}, CheckOut: sterad.Date{Year: 2026, Month: 11, Day: 23}}}, nil
		case "RSV-2":
			return nil, sterad.Errorf(sterad.EConflict, "charged", "the reservation was charged")
		}
		return nil, sterad.Errorf(sterad.ENotFound, "unknown_reservation", "no card kept for %q", ref)
	}}
	s := server(f)
	a := serve(t, s, call{method: "DELETE", path: "/v1/vault/RSV%201"})
	var out struct {
		Released *sterad.VaultEntry `json:"released"`
	}
	a.decode(t, &out)
	if a.Code != 200 || out.Released == nil || out.Released.Reference != "RSV 1" {
		t.Fatalf("%d %s", a.Code, a.Body)
	}
	wantError(t, serve(t, s, call{method: "DELETE", path: "/v1/vault/RSV-2"}), 409, "charged")
	wantError(t, serve(t, s, call{method: "DELETE", path: "/v1/vault/RSV-3"}), 404, "unknown_reservation")
}

func TestReservation(t *testing.T) {
	f := &fake{t: t, ReservationFn: func(_ context.Context, ref string) (*sterad.Reservation, error) {
		if ref != "RSV-1" {
			return nil, sterad.Errorf(sterad.ENotFound, "unknown_reservation", "unknown reservation %q", ref)
		}
		return &sterad.Reservation{Reference: ref, State: "guaranteed", Stay: sterad.Stay{CheckIn: sterad.Date{Year: 2026, Month: 11, Day: 21}, CheckOut: sterad.Date{Year: 2026, Month: 11, Day: 23}}, MaskedPAN: "411111******1111", CardKept: true, Charges: []string{"T5"}}, nil
	}}
	s := server(f)
	a := serve(t, s, call{method: "GET", path: "/v1/reservations/RSV-1"})
	var out sterad.Reservation
	a.decode(t, &out)
	if a.Code != 200 || out.Reference != "RSV-1" || out.State != "guaranteed" || !out.CardKept || fmt.Sprint(out.Charges) != "[T5]" {
		t.Fatalf("%d %s", a.Code, a.Body)
	}
	wantError(t, serve(t, s, call{method: "GET", path: "/v1/reservations/RSV-9"}), 404, "unknown_reservation")
}

func TestStatus(t *testing.T) {
	declined := approved("T7")
	declined.Status, declined.Offline = sterad.StatusDeclined, true
	full := func(t *testing.T) *fake {
		return &fake{t: t,
			AcquirerFn: func() sterad.LinkStatus {
				return sterad.LinkStatus{Online: true, State: "online", Address: "127.0.0.1:9"}
			},
			TerminalsFn: func() []sterad.TerminalInfo {
				return []sterad.TerminalInfo{{ID: "FRONT001", Kind: "fixed", Transport: "serial", State: sterad.TerminalReady}}
			},
			QueueFn: func(context.Context) ([]sterad.QueueItem, error) {
				return []sterad.QueueItem{{Seq: 1, TxnID: "T1", Kind: sterad.QueueReversal}, {Seq: 2, TxnID: "T2", Kind: sterad.QueueAdvice, Parked: true}}, nil
			},
			OpenBatchFn: func(context.Context) (*sterad.Batch, error) {
				return &sterad.Batch{Number: 5, State: sterad.BatchOpen}, nil
			},
			ClosingFn: func(context.Context) (*sterad.Batch, error) {
				return &sterad.Batch{Number: 4, State: sterad.BatchClosing, Attempts: 2, LastError: "host unavailable"}, nil
			},
			ProgressFn: func(n int) (sterad.BatchProgress, bool) {
				return sterad.BatchProgress{Batch: 4, Phase: "settling", Attempts: 2, Error: "host unavailable"}, n == 4
			},
			AlertsFn: func(context.Context) ([]*sterad.Transaction, error) { return []*sterad.Transaction{declined}, nil },
		}
	}
	t.Run("everything", func(t *testing.T) {
		a := serve(t, server(full(t)), call{method: "GET", path: "/v1/status"})
		var st api.Status
		a.decode(t, &st)
		if a.Code != 200 || !st.Acquirer.Online || len(st.Terminals) != 1 || st.Queue != (api.QueueSummary{Depth: 2, Parked: 1}) ||
			st.Batch == nil || st.Batch.Number != 5 || st.Closing == nil || st.Closing.Number != 4 || st.Closing.Progress == nil ||
			st.Closing.Progress.Attempts != 2 || len(st.Alerts) != 1 || st.Alerts[0].ID != "T7" || st.Version != "test" {
			t.Fatalf("%d %s", a.Code, a.Body)
		}
	})
	t.Run("quiet", func(t *testing.T) {
		f := full(t)
		f.QueueFn = func(context.Context) ([]sterad.QueueItem, error) { return nil, nil }
		f.OpenBatchFn = func(context.Context) (*sterad.Batch, error) { return nil, errors.New("no batch") }
		f.ClosingFn = func(context.Context) (*sterad.Batch, error) { return nil, nil }
		f.AlertsFn = func(context.Context) ([]*sterad.Transaction, error) { return nil, nil }
		a := serve(t, server(f), call{method: "GET", path: "/v1/status"})
		if a.Code != 200 || strings.Contains(a.Body, `"batch"`) || strings.Contains(a.Body, `"closing"`) || !strings.Contains(a.Body, `"alerts":[]`) {
			t.Fatalf("%d %s", a.Code, a.Body)
		}
	})
	t.Run("alerts fail", func(t *testing.T) {
		f := full(t)
		f.AlertsFn = func(context.Context) ([]*sterad.Transaction, error) { return nil, sterad.ErrStopping }
		wantError(t, serve(t, server(f), call{method: "GET", path: "/v1/status"}), 503, "stopping")
	})
}

// report is a settlement report as the service builds it.
type report struct {
	From     sterad.Date    `json:"from"`
	To       sterad.Date    `json:"to"`
	Currency string         `json:"currency"`
	Lines    []reportLine   `json:"lines"`
	Brands   []reportTotals `json:"brands"`
	Total    reportTotals   `json:"total"`
	Payouts  []struct{}     `json:"payouts"`
	Batches  []int          `json:"batches"`
	csvErr   error
}

// reportLine is a line of the settlement report.
type reportLine struct {
	Day        sterad.Date  `json:"business_day"`
	Brand      sterad.Brand `json:"brand"`
	Count      int64        `json:"count"`
	Gross      int64        `json:"gross"`
	Refunds    int64        `json:"refunds"`
	Net        int64        `json:"net"`
	FeeRate    *string      `json:"fee_rate"`
	Fee        int64        `json:"fee"`
	Paid       int64        `json:"paid"`
	PayoutDate sterad.Date  `json:"payout_date"`
}

// reportTotals are the settlement report's totals.
type reportTotals struct {
	Count   int64 `json:"count"`
	Gross   int64 `json:"gross"`
	Refunds int64 `json:"refunds"`
	Net     int64 `json:"net"`
	Fee     int64 `json:"fee"`
	Paid    int64 `json:"paid"`
}

func (r *report) Period() (sterad.Date, sterad.Date) { return r.From, r.To }

func (r *report) WriteCSV(w io.Writer) error {
	if r.csvErr != nil {
		return r.csvErr
	}
	_, err := io.WriteString(w, "business_day,brand\n")
	for _, l := range r.Lines {
		fmt.Fprintf(w, "%s,%s\n", l.Day, l.Brand)
	}
	return err
}

func TestSettlementReport(t *testing.T) {
	rep := &report{From: sterad.Date{Year: 2026, Month: 11, Day: 1}, To: sterad.Date{Year: 2026, Month: 11, Day: 30}, Lines: []reportLine{{Day: sterad.Date{Year: 2026, Month: 11, Day: 5}, Brand: "visa", PayoutDate: sterad.Date{Year: 2026, Month: 11, Day: 30}}},
		Currency: "JPY", Brands: []reportTotals{}, Payouts: []struct{}{}, Batches: []int{}}
	var from, to string
	f := &fake{t: t, SettlementReportFn: func(_ context.Context, f, t string) (sterad.SettlementReport, error) {
		from, to = f, t
		if f > t {
			return nil, sterad.Errorf(sterad.EInvalid, "invalid_range", "the report range is reversed")
		}
		return rep, nil
	}}
	s := server(f)
	const q = "/v1/reports/settlement?from=2026-11-01&to=2026-11-30"
	for _, tt := range []struct {
		name   string
		path   string
		accept string
		csv    bool
	}{
		{"JSON", q, "", false},
		{"JSON asked for", q, "application/json", false},
		{"CSV by Accept", q, "text/csv", true},
		{"CSV among others", q, "text/csv, application/json;q=0.5", true},
		{"CSV by format", q + "&format=csv", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.accept != "" {
				h.Set("Accept", tt.accept)
			}
			a := serve(t, s, call{method: "GET", path: tt.path, header: h})
			if a.Code != 200 || from != "2026-11-01" || to != "2026-11-30" {
				t.Fatalf("%d %s (from %q to %q)", a.Code, a.Body, from, to)
			}
			if tt.csv {
				if ct := a.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
					t.Errorf("Content-Type %q", ct)
				}
				if cd := a.Header.Get("Content-Disposition"); cd != `attachment; filename="settlement-2026-11-01-2026-11-30.csv"` {
					t.Errorf("Content-Disposition %q", cd)
				}
				if a.Body != "business_day,brand\n2026-11-05,visa\n" {
					t.Errorf("CSV %q", a.Body)
				}
				return
			}
			var got report
			a.decode(t, &got)
			if got.From != rep.From || got.To != rep.To || len(got.Lines) != 1 || got.Lines[0].Day.String() != "2026-11-05" || got.Lines[0].Brand != "visa" {
				t.Errorf("JSON %s", a.Body)
			}
		})
	}
	wantError(t, serve(t, s, call{method: "GET", path: "/v1/reports/settlement?from=2026-11-30&to=2026-11-01"}), 400, "invalid_range")
	// A CSV that fails half-way is cut short: the status is already sent.
	rep.csvErr = errors.New("broken pipe")
	if a := serve(t, s, call{method: "GET", path: q + "&format=csv"}); a.Code != 200 || a.Body != "" {
		t.Errorf("%d %q", a.Code, a.Body)
	}
}

func TestMetrics(t *testing.T) {
	s := server(&fake{t: t})
	s.Metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "sterad_queue_depth 0\n") })
	a := serve(t, s, call{method: "GET", path: "/metrics"})
	if a.Code != 200 || a.Body != "sterad_queue_depth 0\n" {
		t.Fatalf("%d %s", a.Code, a.Body)
	}
}

// sims are simulators whose controls echo the path they are asked for.
type sims struct{}

func (sims) Acquirer() http.Handler { return echo("acquirer") }

func (sims) Terminal(id string) (http.Handler, bool) {
	if id != "FRONT001" {
		return nil, false
	}
	return echo("terminal " + id), true
}

func echo(who string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(echoHeader, "1") // not the real controls: openapitest passes over it
		fmt.Fprintf(w, "%s %s %s", who, r.Method, r.URL.Path)
	})
}

func TestSimulators(t *testing.T) {
	s := server(&fake{t: t})
	s.Simulators = sims{}
	for _, tt := range []struct {
		route  string
		status int
		want   string
	}{
		{"POST /v1/sim/acquirer/outage", 200, "acquirer POST /outage"},
		{"GET /v1/sim/acquirer/ledger", 200, "acquirer GET /ledger"},
		{"POST /v1/sim/terminals/FRONT001/card", 200, "terminal FRONT001 POST /card"},
		{"GET /v1/sim/terminals/FRONT001/state", 200, "terminal FRONT001 GET /state"},
		{"GET /v1/sim/terminals/HAND0009/state", 404, "unknown_terminal"},
		{"GET /v1/sim/printer/state", 404, "no_route"},
	} {
		method, path, _ := strings.Cut(tt.route, " ")
		a := serve(t, s, call{method: method, path: path})
		if tt.status != 200 {
			e := wantError(t, a, tt.status, tt.want)
			if tt.want == "unknown_terminal" && !strings.Contains(e.Message, "HAND0009") {
				t.Errorf("message %q", e.Message)
			}
			continue
		}
		if a.Code != 200 || a.Body != tt.want {
			t.Errorf("%s: %d %q, want %q", tt.route, a.Code, a.Body, tt.want)
		}
	}
}

// A panic in a handler is a 500 that does not show the panic's value.
func TestPanicIsAnInternalError(t *testing.T) {
	f := &fake{t: t, TransactionFn: func(context.Context, string) (*sterad.Transaction, error) {
		panic("card 4111111111111111 exploded")
	}}
	a := serve(t, server(f), call{method: "GET", path: "/v1/transactions/T1"})
	wantError(t, a, 500, "internal")
	if strings.Contains(a.Body, "4111") || strings.Contains(a.Body, "exploded") {
		t.Fatalf("the panic shows: %s", a.Body)
	}
}

// A pre-authorization shows its authorized total; a debit refunded in
// part shows what was refunded.
func TestViewAmounts(t *testing.T) {
	pre := approved("T1")
	pre.Op, pre.AuthorizedTotal = sterad.OpPreauth, sterad.NewAmount(45000, sterad.JPY)
	sale := approved("T2")
	sale.Refunded = sterad.NewAmount(1000, sterad.JPY)
	notRefunded := approved("T3")
	notRefunded.Refunded = sterad.NewAmount(0, sterad.JPY)
	for _, tt := range []struct {
		tx                   *sterad.Transaction
		authorized, refunded string
	}{
		{pre, "45000", ""},
		{sale, "", "1000"},
		{notRefunded, "", ""},
	} {
		v := api.View(tt.tx, false)
		if v.AuthorizedTotal != tt.authorized || v.Refunded != tt.refunded {
			t.Errorf("%s: authorized %q refunded %q", tt.tx.ID, v.AuthorizedTotal, v.Refunded)
		}
	}
}

// Card-data-blind (issue 12): a body with `card` is refused by the
// gateway with card_data_blind; the API answers 400 and never echoes the
// body.
func TestCreateTransactionCardDataBlind(t *testing.T) {
	for _, body := range []string{
		`{"op":"sale","amount":12800,"card":{"pan":"4111111111111111","expiry":"2812"}}`,
		`{"op":"cardcheck","reference":"R1","stay":{"checkin":"2026-11-21","checkout":"2026-11-22"},"card":{"pan":"5555555555554444","expiry":"2812"}}`,
	} {
		var got sterad.Request
		f := &fake{t: t, SubmitFn: func(_ context.Context, r sterad.Request) (*sterad.Transaction, bool, error) {
			got = r
			return nil, false, sterad.ErrCardDataBlind
		}}
		a := serve(t, server(f), call{method: "POST", path: "/v1/transactions", body: body})
		var eb api.ErrorBody
		a.decode(t, &eb)
		if a.Code != 400 || eb.Error.Code != "card_data_blind" || !strings.Contains(eb.Error.Message, "card-data-blind") {
			t.Fatalf("%d %s", a.Code, a.Body)
		}
		if got.PAN == "" {
			t.Fatal("the card did not reach the gateway to be refused")
		}
		for _, pan := range []string{"4111111111111111", "5555555555554444", "2812"} {
			if strings.Contains(a.Body, pan) {
				t.Fatalf("the answer echoes the body: %s", a.Body)
			}
		}
	}
}

// The queue never shows a stood-in transaction's encrypted block.
func TestQueueHidesEncryptedBlocks(t *testing.T) {
	block := &sterad.EncryptedBlock{KSN: "FFFF9876543210E000000001", Data: strings.Repeat("AB", 32)}
	f := &fake{t: t, QueueFn: func(context.Context) ([]sterad.QueueItem, error) {
		return []sterad.QueueItem{{Seq: 1, TxnID: "T1", Kind: sterad.QueueAdvice, Block: block}}, nil
	}}
	a := serve(t, server(f), call{method: "GET", path: "/v1/queue"})
	if a.Code != 200 || strings.Contains(a.Body, block.Data) || strings.Contains(a.Body, block.KSN) || !strings.Contains(a.Body, "T1") {
		t.Fatalf("%d %s", a.Code, a.Body)
	}
}
