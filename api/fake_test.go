package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
)

// fake implements every service the API serves. Each method calls its
// function when set; a method without one fails the test: the handler
// asked for something it should not have.
type fake struct {
	t *testing.T

	SubmitFn           func(context.Context, sterad.Request) (*sterad.Transaction, bool, error)
	TransactionFn      func(context.Context, string) (*sterad.Transaction, error)
	TransactionsFn     func(context.Context, sterad.TransactionFilter) ([]*sterad.Transaction, error)
	TerminalsFn        func() []sterad.TerminalInfo
	QueueFn            func(context.Context) ([]sterad.QueueItem, error)
	QueueCountsFn      func(context.Context) (sterad.QueueCounts, error) // default: counts QueueFn's items
	FlushFn            func(context.Context) (int, error)
	BatchesFn          func(context.Context) ([]*sterad.Batch, error)
	BatchFn            func(context.Context, int) (*sterad.Batch, error)
	ProgressFn         func(int) (sterad.BatchProgress, bool)
	StartCloseFn       func(context.Context) (*sterad.CloseRun, error)
	OpenBatchFn        func(context.Context) (*sterad.Batch, error)
	ClosingFn          func(context.Context) (*sterad.Batch, error)
	VaultFn            func(context.Context) ([]*sterad.VaultEntry, error)
	PurgeFn            func(context.Context) (*sterad.PurgeResult, error)
	ReleaseVaultFn     func(context.Context, string) (*sterad.VaultEntry, error)
	ReservationFn      func(context.Context, string) (*sterad.Reservation, error)
	AcquirerFn         func() sterad.LinkStatus
	AlertsFn           func(context.Context) ([]*sterad.Transaction, error)
	SettlementReportFn func(context.Context, string, string) (sterad.SettlementReport, error)
}

var (
	_ sterad.TransactionService = (*fake)(nil)
	_ sterad.TerminalService    = (*fake)(nil)
	_ sterad.QueueService       = (*fake)(nil)
	_ sterad.BatchService       = (*fake)(nil)
	_ sterad.VaultService       = (*fake)(nil)
	_ sterad.ReservationService = (*fake)(nil)
	_ sterad.StatusService      = (*fake)(nil)
	_ sterad.SettlementService  = (*fake)(nil)
)

func (f *fake) unexpected(name string) {
	f.t.Helper()
	f.t.Errorf("unexpected call of %s", name)
}

func (f *fake) Submit(ctx context.Context, r sterad.Request) (*sterad.Transaction, bool, error) {
	if f.SubmitFn == nil {
		f.unexpected("Submit")
		return nil, false, errUnexpected
	}
	return f.SubmitFn(ctx, r)
}

func (f *fake) Transaction(ctx context.Context, id string) (*sterad.Transaction, error) {
	if f.TransactionFn == nil {
		f.unexpected("Transaction")
		return nil, errUnexpected
	}
	return f.TransactionFn(ctx, id)
}

func (f *fake) Transactions(ctx context.Context, fl sterad.TransactionFilter) ([]*sterad.Transaction, error) {
	if f.TransactionsFn == nil {
		f.unexpected("Transactions")
		return nil, errUnexpected
	}
	return f.TransactionsFn(ctx, fl)
}

func (f *fake) Terminals() []sterad.TerminalInfo {
	if f.TerminalsFn == nil {
		f.unexpected("Terminals")
		return nil
	}
	return f.TerminalsFn()
}

func (f *fake) Queue(ctx context.Context) ([]sterad.QueueItem, error) {
	if f.QueueFn == nil {
		f.unexpected("Queue")
		return nil, errUnexpected
	}
	return f.QueueFn(ctx)
}

func (f *fake) QueueCounts(ctx context.Context) (sterad.QueueCounts, error) {
	if f.QueueCountsFn != nil {
		return f.QueueCountsFn(ctx)
	}
	items, err := f.Queue(ctx)
	if err != nil {
		return sterad.QueueCounts{}, err
	}
	qc := sterad.QueueCounts{Depth: len(items)}
	for _, it := range items {
		if it.Parked {
			qc.Parked++
		}
	}
	return qc, nil
}

func (f *fake) Flush(ctx context.Context) (int, error) {
	if f.FlushFn == nil {
		f.unexpected("Flush")
		return 0, errUnexpected
	}
	return f.FlushFn(ctx)
}

func (f *fake) Batches(ctx context.Context) ([]*sterad.Batch, error) {
	if f.BatchesFn == nil {
		f.unexpected("Batches")
		return nil, errUnexpected
	}
	return f.BatchesFn(ctx)
}

func (f *fake) Batch(ctx context.Context, n int) (*sterad.Batch, error) {
	if f.BatchFn == nil {
		f.unexpected("Batch")
		return nil, errUnexpected
	}
	return f.BatchFn(ctx, n)
}

// Progress has no close under way unless told.
func (f *fake) Progress(n int) (sterad.BatchProgress, bool) {
	if f.ProgressFn == nil {
		return sterad.BatchProgress{}, false
	}
	return f.ProgressFn(n)
}

func (f *fake) StartClose(ctx context.Context) (*sterad.CloseRun, error) {
	if f.StartCloseFn == nil {
		f.unexpected("StartClose")
		return nil, errUnexpected
	}
	return f.StartCloseFn(ctx)
}

func (f *fake) OpenBatch(ctx context.Context) (*sterad.Batch, error) {
	if f.OpenBatchFn == nil {
		f.unexpected("OpenBatch")
		return nil, errUnexpected
	}
	return f.OpenBatchFn(ctx)
}

func (f *fake) Closing(ctx context.Context) (*sterad.Batch, error) {
	if f.ClosingFn == nil {
		f.unexpected("Closing")
		return nil, errUnexpected
	}
	return f.ClosingFn(ctx)
}

func (f *fake) Vault(ctx context.Context) ([]*sterad.VaultEntry, error) {
	if f.VaultFn == nil {
		f.unexpected("Vault")
		return nil, errUnexpected
	}
	return f.VaultFn(ctx)
}

func (f *fake) Purge(ctx context.Context) (*sterad.PurgeResult, error) {
	if f.PurgeFn == nil {
		f.unexpected("Purge")
		return nil, errUnexpected
	}
	return f.PurgeFn(ctx)
}

func (f *fake) ReleaseVault(ctx context.Context, ref string) (*sterad.VaultEntry, error) {
	if f.ReleaseVaultFn == nil {
		f.unexpected("ReleaseVault")
		return nil, errUnexpected
	}
	return f.ReleaseVaultFn(ctx, ref)
}

func (f *fake) Reservation(ctx context.Context, ref string) (*sterad.Reservation, error) {
	if f.ReservationFn == nil {
		f.unexpected("Reservation")
		return nil, errUnexpected
	}
	return f.ReservationFn(ctx, ref)
}

func (f *fake) Acquirer() sterad.LinkStatus {
	if f.AcquirerFn == nil {
		f.unexpected("Acquirer")
		return sterad.LinkStatus{}
	}
	return f.AcquirerFn()
}

func (f *fake) Alerts(ctx context.Context) ([]*sterad.Transaction, error) {
	if f.AlertsFn == nil {
		f.unexpected("Alerts")
		return nil, errUnexpected
	}
	return f.AlertsFn(ctx)
}

func (f *fake) SettlementReport(ctx context.Context, from, to string) (sterad.SettlementReport, error) {
	if f.SettlementReportFn == nil {
		f.unexpected("SettlementReport")
		return nil, errUnexpected
	}
	return f.SettlementReportFn(ctx, from, to)
}

var errUnexpected = sterad.Errorf(sterad.EInternal, "unexpected", "unexpected call")

const token = "s3cret-token"

// server returns the API serving f with the test token.
func server(f *fake) *api.Server {
	return &api.Server{
		Transactions: f, Terminals: f, Queue: f, Batches: f, Vault: f, Reservations: f, Status: f, Settlement: f,
		Token: token, Version: "test",
	}
}

// answer is what a client of the API sees.
type answer struct {
	Code   int
	Header http.Header
	Body   string
}

// errorBody decodes an error answer; it fails the test if the body is not
// the API's error shape.
func (a answer) errorBody(t *testing.T) api.ErrorDetail {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal([]byte(a.Body), &eb); err != nil || eb.Error.Code == "" {
		t.Fatalf("not an error body (%v): %s", err, a.Body)
	}
	if ct := a.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type %q", ct)
	}
	return eb.Error
}

// decode decodes a JSON answer into v.
func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(a.Body), v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, a.Body)
	}
}

// call is one request to the API.
type call struct {
	method, path string
	body         string
	header       http.Header
	noToken      bool
	ctx          context.Context
}

// serve sends c to s's handler with the token and returns the answer.
func serve(t *testing.T, s *api.Server, c call) answer {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	r := httptest.NewRequest(c.method, c.path, body)
	if c.ctx != nil {
		r = r.WithContext(c.ctx)
	}
	for k, v := range c.header {
		r.Header[k] = v
	}
	if !c.noToken {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	validating(t, s.Handler()).ServeHTTP(w, r)
	return answer{Code: w.Code, Header: w.Header(), Body: w.Body.String()}
}

// wantError checks an error answer's status and code.
func wantError(t *testing.T, a answer, status int, code string) api.ErrorDetail {
	t.Helper()
	if a.Code != status {
		t.Errorf("status %d, want %d: %s", a.Code, status, a.Body)
	}
	e := a.errorBody(t)
	if code != "" && e.Code != code {
		t.Errorf("error code %q, want %q (%s)", e.Code, code, e.Message)
	}
	return e
}

var when = time.Date(2026, 11, 21, 10, 30, 0, 0, time.UTC)

// approved is an approved sale as the gateway returns it.
func approved(id string) *sterad.Transaction {
	return &sterad.Transaction{
		ID: id, Op: sterad.OpSale, Status: sterad.StatusApproved, ResponseCode: "00", AuthCode: "A1B2C3", RRN: "000000000042",
		STAN: 42, Amount: sterad.NewAmount(12800, sterad.JPY), Currency: "JPY", MaskedPAN: "411111******1111", Brand: "visa",
		Entry: "chip", Terminal: "FRONT001", TerminalID: "FRONT001", Reference: "RSV-0042", Batch: 3,
		CreatedAt: when, UpdatedAt: when,
		Events: []sterad.Event{{At: when, Status: sterad.StatusPending, Step: sterad.StepCreated}, {At: when, Status: sterad.StatusApproved, Step: "done"}},
	}
}
