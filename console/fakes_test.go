package console_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/console"
)

var t0 = time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC) // 19:00 in Tokyo

// memStore is an in-memory ConsoleStore.
type memStore struct {
	mu       sync.Mutex
	users    map[string]sterad.ConsoleUser
	sessions map[string]sterad.ConsoleSession
	audit    []sterad.AuditEntry
}

func newMemStore() *memStore {
	return &memStore{users: map[string]sterad.ConsoleUser{}, sessions: map[string]sterad.ConsoleSession{}}
}

func (m *memStore) ConsoleUser(_ context.Context, name string) (*sterad.ConsoleUser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[name]
	if !ok {
		return nil, sterad.ErrNotFound
	}
	return &u, nil
}

func (m *memStore) ConsoleUsers(context.Context) ([]*sterad.ConsoleUser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*sterad.ConsoleUser
	for _, u := range m.users {
		u := u
		out = append(out, &u)
	}
	slices.SortFunc(out, func(a, b *sterad.ConsoleUser) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (m *memStore) PutConsoleUser(_ context.Context, u *sterad.ConsoleUser) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[u.Name] = *u
	return nil
}

func (m *memStore) ConsoleSession(_ context.Context, id string) (*sterad.ConsoleSession, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok {
		return nil, sterad.ErrNotFound
	}
	return &s, nil
}

func (m *memStore) PutConsoleSession(_ context.Context, s *sterad.ConsoleSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[s.ID] = *s
	return nil
}

func (m *memStore) DeleteConsoleSession(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, id)
	return nil
}

func (m *memStore) AppendAudit(_ context.Context, e sterad.AuditEntry) (sterad.AuditEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.Seq = uint64(len(m.audit) + 1)
	m.audit = append(m.audit, e)
	return e, nil
}

func (m *memStore) Audit(_ context.Context, f sterad.AuditFilter) ([]sterad.AuditEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []sterad.AuditEntry
	for i := len(m.audit) - 1; i >= 0; i-- {
		e := m.audit[i]
		if f.User != "" && e.User != f.User {
			continue
		}
		if f.Text != "" && !strings.Contains(strings.ToLower(e.Action+" "+e.Txn+" "+e.Reference+" "+e.Detail+" "+e.User), strings.ToLower(f.Text)) {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

func (m *memStore) actions() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, e := range m.audit {
		out = append(out, e.User+" "+e.Action)
	}
	return out
}

// texts returns every audit entry in full.
func (m *memStore) texts() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, e := range m.audit {
		out = append(out, fmt.Sprintf("%+v", e))
	}
	return out
}

// fakeTxns is a TransactionService whose transactions follow scripted
// timelines: each read of a transaction returns its next state, then
// stays on the last.
type fakeTxns struct {
	mu        sync.Mutex
	timelines map[string][]*sterad.Transaction
	reads     map[string]int
	order     []string
	submitted []sterad.Request
	// next is the timeline the next Submit's transaction follows (after
	// its first, pending state).
	next []sterad.Status
}

func newFakeTxns() *fakeTxns {
	return &fakeTxns{timelines: map[string][]*sterad.Transaction{}, reads: map[string]int{}}
}

func (f *fakeTxns) add(t *sterad.Transaction, later ...*sterad.Transaction) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timelines[t.ID] = append([]*sterad.Transaction{t}, later...)
	f.order = append(f.order, t.ID)
}

func (f *fakeTxns) Submit(_ context.Context, r sterad.Request) (*sterad.Transaction, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range f.order {
		if tl := f.timelines[id]; tl[0].IdempotencyKey == r.IdempotencyKey {
			return tl[0].Clone(), true, nil
		}
	}
	f.submitted = append(f.submitted, r)
	amt, err := sterad.ParseAmount(r.Amount, sterad.JPY)
	if err != nil && r.Op != "void" && r.Op != "cardcheck" && r.Op != "cancellation" {
		return nil, false, sterad.Errorf(sterad.EInvalid, "invalid_amount", "amount %q is not valid", r.Amount)
	}
	id := fmt.Sprintf("T%03d", len(f.order)+1)
	t := &sterad.Transaction{ID: id, Op: sterad.Op(r.Op), Status: sterad.StatusPending, Step: sterad.StepReading, Amount: amt,
		Currency: "JPY", Terminal: r.Terminal, Reference: r.Reference, Original: r.Original, IdempotencyKey: r.IdempotencyKey,
		CreatedAt: t0, UpdatedAt: t0}
	tl := []*sterad.Transaction{t}
	for i, st := range f.next {
		c := t.Clone()
		c.Status, c.Step = st, sterad.StepSent
		if i == len(f.next)-1 {
			c.Step = sterad.StepDone
		}
		if st == sterad.StatusApproved {
			c.AuthCode, c.MaskedPAN, c.Brand = "123456", "411111******1111", sterad.BrandVisa
		}
		if st == sterad.StatusDeclined {
			c.Reason, c.ResponseCode = "declined by the issuer (05)", "05"
		}
		tl = append(tl, c)
	}
	f.timelines[id] = tl
	f.order = append(f.order, id)
	return t.Clone(), false, nil
}

func (f *fakeTxns) Transaction(_ context.Context, id string) (*sterad.Transaction, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tl, ok := f.timelines[id]
	if !ok {
		return nil, sterad.ErrNotFound
	}
	i := min(f.reads[id], len(tl)-1)
	f.reads[id]++
	return tl[i].Clone(), nil
}

func (f *fakeTxns) Transactions(_ context.Context, flt sterad.TransactionFilter) ([]*sterad.Transaction, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*sterad.Transaction
	for _, id := range f.order {
		tl := f.timelines[id]
		t := tl[len(tl)-1]
		if !flt.Date.IsZero() && sterad.DateOf(t.CreatedAt.In(flt.Location)) != flt.Date {
			continue
		}
		if flt.Batch != 0 && t.Batch != flt.Batch {
			continue
		}
		out = append(out, t.Clone())
	}
	return out, nil
}

func (f *fakeTxns) requests() []sterad.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.submitted)
}

type fakeTerminals []sterad.TerminalInfo

func (f fakeTerminals) Terminals() []sterad.TerminalInfo { return f }

// env is a console under test with its fakes.
type env struct {
	srv   *httptest.Server
	cons  *console.Server
	store *memStore
	txns  *fakeTxns
	clock *sterad.FakeClock
	extra *fakeServices
	pay   *fakePayments
	logs  *lockedWriter
}

// newEnv starts a console on fakes; tune changes the server before it
// starts (card-data mode…).
func newEnv(t *testing.T, tune ...func(*console.Server)) *env {
	t.Helper()
	e := &env{store: newMemStore(), txns: newFakeTxns(), clock: sterad.NewFakeClock(t0), extra: newFakeServices(), pay: &fakePayments{}, logs: &lockedWriter{}}
	e.cons = &console.Server{
		Transactions: e.txns,
		Terminals: fakeTerminals{
			{ID: "FRONT001", Kind: sterad.KindFixed, State: sterad.TerminalReady, Model: "SIM-100"},
			{ID: "HAND0001", Kind: sterad.KindHandheld, State: sterad.TerminalOffline},
		},
		Batches: e.extra, Vault: e.extra, Reservations: e.extra, Status: e.extra, Settlement: e.extra, Queue: e.extra,
		Payments: e.pay, Store: e.store, Clock: e.clock, Poll: time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range tune {
		f(e.cons)
	}
	h, err := e.cons.Handler()
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", h)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	for _, u := range []struct{ name, role string }{{"sato", sterad.RoleClerk}, {"kato", sterad.RoleAuditor}, {"admin", sterad.RoleAdmin}, {"ito", sterad.RoleReservations}} {
		if err := console.AddUser(context.Background(), e.store, u.name, u.role, "correct horse battery", t0); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// lockedWriter serialises writes to the log buffer.
type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(b)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// client is a browser without JavaScript: a cookie jar that does not
// follow redirects.
type client struct {
	t    *testing.T
	e    *env
	http *http.Client
}

func (e *env) client(t *testing.T) *client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	return &client{t: t, e: e, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type response struct {
	code     int
	body     string
	location string
	header   http.Header
}

func (c *client) do(req *http.Request) response {
	c.t.Helper()
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, string(b), res.Header.Get("Location"), res.Header}
}

func (c *client) get(path string) response {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.e.srv.URL+path, nil)
	return c.do(req)
}

func (c *client) post(path string, form url.Values) response {
	c.t.Helper()
	req, _ := http.NewRequest("POST", c.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
var idemRE = regexp.MustCompile(`name="idem" value="([^"]+)"`)
var shownRE = regexp.MustCompile(`name="shown" value="([^"]*)"`)

func field(t *testing.T, re *regexp.Regexp, body string) string {
	t.Helper()
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in the page:\n%s", re, body)
	}
	return m[1]
}

// login logs in and returns the session's CSRF token (from the page the
// login leads to).
func (c *client) login(user, password string) response {
	c.t.Helper()
	page := c.get("/console/login")
	return c.post("/console/login", url.Values{"csrf": {field(c.t, csrfRE, page.body)}, "user": {user}, "password": {password}})
}

func (c *client) mustLogin(user string) string {
	c.t.Helper()
	return c.mustLoginWith(user, "correct horse battery")
}

func (c *client) mustLoginWith(user, password string) string {
	c.t.Helper()
	res := c.login(user, password)
	if res.code != http.StatusSeeOther {
		c.t.Fatalf("login %s: %d\n%s", user, res.code, res.body)
	}
	return field(c.t, csrfRE, c.get("/console/desk").body)
}
