package api_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/internal/testutil"
)

// Duplicate keys and keys in another case than the field's are refused
// before anything is submitted: encoding/json would take the last
// duplicate, and match "Amount" or "AMOUNT" to "amount".
func TestCreateRefusesDuplicateAndCaseFoldedKeys(t *testing.T) {
	for _, tt := range []struct {
		name, body, code, inMessage string
	}{
		{"duplicate amount", `{"op":"sale","terminal":"FRONT001","amount":"100","amount":"900000"}`, "duplicate_field", `"amount"`},
		{"duplicate op", `{"op":"refund","op":"sale","terminal":"FRONT001","amount":"100"}`, "duplicate_field", `"op"`},
		{"duplicate in card", `{"op":"sale","amount":"100","card":{"pan":"4111111111111111","pan":"5555555555554444","expiry":"3012"}}`, "duplicate_field", `"pan"`},
		{"duplicate unknown key", `{"op":"sale","4111111111111111":1,"4111111111111111":2}`, "duplicate_field", "appears twice"},
		{"case-folded amount", `{"op":"sale","terminal":"FRONT001","amount":"100","Amount":"900000"}`, "field_case", `"Amount" must be written "amount"`},
		{"upper-case op", `{"OP":"sale","terminal":"FRONT001","amount":"100"}`, "field_case", `"OP" must be written "op"`},
		{"case-folded card field", `{"op":"sale","amount":"100","card":{"PAN":"4111111111111111","expiry":"3012"}}`, "field_case", `"PAN" must be written "pan"`},
		{"case-folded stay field", `{"op":"preauth","amount":"100","reference":"R1","terminal":"FRONT001","stay":{"checkIn":"2026-11-21","checkout":"2026-11-22"}}`, "field_case", `"checkin"`},
		{"kelvin sign", "{\"op\":\"sale\",\"terminal\":\"FRONT001\",\"amount\":\"100\",\"to\u212aen\":\"x\"}", "field_case", `"token"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := server(&fake{t: t}) // Submit must not be called
			a := serve(t, s, call{method: "POST", path: "/v1/transactions", body: tt.body})
			e := wantError(t, a, 400, tt.code)
			if !strings.Contains(e.Message, tt.inMessage) {
				t.Errorf("message %q does not say %s", e.Message, tt.inMessage)
			}
			if strings.Contains(a.Body, "4111111111111111") || strings.Contains(a.Body, "555555") {
				t.Errorf("the answer quotes a card number: %s", a.Body)
			}
		})
	}
	// The same request written properly goes through.
	var got sterad.Request
	s := server(&fake{t: t, SubmitFn: func(_ context.Context, r sterad.Request) (*sterad.Transaction, bool, error) {
		got = r
		return approved("T1"), false, nil
	}})
	a := serve(t, s, call{method: "POST", path: "/v1/transactions", body: `{"op":"sale","amount":"100","card":{"pan":"4111111111111111","expiry":"3012"},"stay":{"checkin":"2026-11-21","checkout":"2026-11-22"}}`})
	if a.Code != 201 || got.Amount != "100" || got.PAN != "4111111111111111" || got.CheckIn != "2026-11-21" {
		t.Fatalf("%d %+v: %s", a.Code, got, a.Body)
	}
}

// A payment refused because the journal cannot be written is a 503 that
// says so and that nothing was charged, not a 500 "internal error".
func TestCreateJournalUnwritableIs503(t *testing.T) {
	s := server(&fake{t: t, SubmitFn: func(context.Context, sterad.Request) (*sterad.Transaction, bool, error) {
		return nil, false, sterad.Errorf(sterad.EUnavailable, api.CodeJournalUnwritable, "sterad cannot write its journal (disk full?)")
	}})
	a := serve(t, s, call{method: "POST", path: "/v1/transactions", body: `{"op":"sale","terminal":"FRONT001","amount":"100"}`})
	e := wantError(t, a, 503, api.CodeJournalUnwritable)
	if !strings.Contains(e.Message, "disk full") || !strings.Contains(e.Message, "nothing was charged") {
		t.Fatalf("message %q", e.Message)
	}
}

// /healthz says failing (503) when payments are refused, degraded (200,
// 503 with ?strict) when they go on but not as they should, and computes
// its checks at most once per HealthTTL however often it is called.
func TestHealthzDegradedAndCached(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	disk := api.HealthProblem{Check: "disk", Severity: api.HealthFailing, Message: "data_dir has 12 MB free, less than 256 MB"}
	acq := api.HealthProblem{Check: "acquirer", Severity: api.HealthDegraded, Message: "the acquirer link is offline"}
	problems := []api.HealthProblem{acq, disk}
	now := when
	s := server(&fake{t: t})
	s.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s.Health = func(context.Context) []api.HealthProblem {
		calls.Add(1)
		mu.Lock()
		defer mu.Unlock()
		return problems
	}
	get := func(path string) (int, api.Health) {
		a := serve(t, s, call{method: "GET", path: path, noToken: true})
		var h api.Health
		a.decode(t, &h)
		return a.Code, h
	}
	advance := func(p ...api.HealthProblem) {
		mu.Lock()
		now, problems = now.Add(api.DefaultHealthTTL), p
		mu.Unlock()
	}
	for range 50 {
		code, h := get("/healthz")
		if code != 503 || h.Status != "failing" || len(h.Problems) != 2 || h.Problems[1].Check != "disk" {
			t.Fatalf("%d %+v", code, h)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("health computed %d times within its TTL, want 1", n)
	}
	advance(acq)
	if code, h := get("/healthz"); code != 200 || h.Status != "degraded" || calls.Load() != 2 {
		t.Fatalf("acquirer down: %d %+v, %d computations", code, h, calls.Load())
	}
	if code, h := get("/healthz?strict"); code != 503 || h.Status != "degraded" {
		t.Fatalf("acquirer down, strict: %d %+v", code, h)
	}
	advance()
	if code, h := get("/healthz?strict"); code != 200 || h.Status != "ok" || len(h.Problems) != 0 {
		t.Fatalf("healthy: %d %+v", code, h)
	}
}

// An answer without the token closes its connection.
func TestUnauthorizedClosesTheConnection(t *testing.T) {
	a := serve(t, server(&fake{t: t}), call{method: "GET", path: "/v1/terminals", noToken: true})
	wantError(t, a, 401, "unauthorized")
	if a.Header.Get("Connection") != "close" {
		t.Fatalf("Connection %q", a.Header.Get("Connection"))
	}
}

// guardedServer serves s on loopback behind a ConnGuard with the given
// bounds and timeouts.
func guardedServer(t *testing.T, s *api.Server, g *api.ConnGuard, tune func(*http.Server)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s.Handler(), ConnState: g.ConnState, ConnContext: g.ConnContext, ReadHeaderTimeout: 5 * time.Second}
	if tune != nil {
		tune(srv)
	}
	go srv.Serve(g.Listener(ln))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// waitClosed reports whether the server closed c (EOF or reset) within
// 5 s, whatever it answered before.
func waitClosed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// Connections without the token are bounded: the oldest are closed to
// make room, an authenticated keep-alive connection is kept, and a new
// client with the token gets in while the flood goes on.
func TestConnGuardBoundsUnauthenticated(t *testing.T) {
	f := &fake{t: t, TerminalsFn: func() []sterad.TerminalInfo { return nil }}
	g := &api.ConnGuard{Max: 16, MaxUnauthenticated: 4}
	addr := guardedServer(t, server(f), g, nil)

	// An authenticated client with a keep-alive connection.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	t.Cleanup(client.CloseIdleConnections)
	authGet := func() (reused bool) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/terminals", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
		}))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("authenticated request: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("authenticated request: %d", resp.StatusCode)
		}
		return reused
	}
	authGet()

	// A flood of idle connections that never authenticate.
	var flood []net.Conn
	for range 40 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, c)
		t.Cleanup(func() { c.Close() })
	}
	// Plus some that ask /healthz and stay open.
	for range 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %v", err)
		}
		flood = append(flood, c)
	}
	st := g.Stats()
	if st.Unauthenticated > 4 || st.Open > 16 {
		t.Fatalf("stats %+v: over the bounds", st)
	}
	if st.Evicted < 40 {
		t.Fatalf("stats %+v: want at least 40 evicted", st)
	}
	// The oldest flood connections were closed by the server.
	if !waitClosed(flood[0]) {
		t.Fatal("the oldest unauthenticated connection is still open")
	}
	if !authGet() {
		t.Error("the authenticated keep-alive connection was not kept")
	}
	// A new client with the token gets in.
	client.CloseIdleConnections()
	if authGet() {
		t.Fatal("expected a new connection")
	}
}

// When every connection is authenticated and busy, a new one is refused
// at once rather than queued without bound.
func TestConnGuardRefusesWhenAllBusy(t *testing.T) {
	release := make(chan struct{})
	inside := make(chan struct{})
	f := &fake{t: t, TerminalsFn: func() []sterad.TerminalInfo { inside <- struct{}{}; <-release; return nil }}
	g := &api.ConnGuard{Max: 2, MaxUnauthenticated: 1}
	addr := guardedServer(t, server(f), g, nil)
	// Keep the two slots busy, one after the other (one unauthenticated
	// slot at a time).
	done := make(chan error, 2)
	for range 2 {
		go func() {
			req, _ := http.NewRequest("GET", "http://"+addr+"/v1/terminals", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		select {
		case <-inside:
		case err := <-done:
			t.Fatalf("request ended before its handler ran: %v", err)
		}
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !waitClosed(c) {
		t.Fatal("a third connection was kept while both slots were busy")
	}
	if st := g.Stats(); st.Refused != 1 || st.Open != 2 {
		t.Fatalf("stats %+v", st)
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// A payment that waits longer than the server's read and write timeouts
// is neither cancelled nor cut: the timeouts bound reading the request
// and writing the answer, not the wait.
func TestPaymentWaitOutlastsServerTimeouts(t *testing.T) {
	const timeout = 150 * time.Millisecond
	ctxErr := make(chan error, 1)
	f := &fake{t: t, SubmitFn: func(ctx context.Context, r sterad.Request) (*sterad.Transaction, bool, error) {
		// The payment: the customer takes longer than both timeouts.
		select {
		case <-ctx.Done():
		case <-time.After(4 * timeout):
		}
		ctxErr <- ctx.Err()
		return approved("T1"), false, nil
	}}
	s := server(f)
	s.AnswerTimeout = timeout
	addr := guardedServer(t, s, &api.ConnGuard{}, func(srv *http.Server) {
		srv.ReadTimeout, srv.WriteTimeout = timeout, timeout
	})
	c := api.NewClient(addr, token)
	tx, _, err := c.CreateTransaction(context.Background(), api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "12800"}, api.CreateOptions{})
	if err != nil {
		t.Fatalf("the answer was lost: %v", err)
	}
	if err := <-ctxErr; err != nil || tx.Status != "approved" {
		t.Fatalf("request context ended (%v) or status %s", err, tx.Status)
	}
	// A slow reader of an ordinary request is still bounded: the read
	// timeout ends a body that never completes.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /v1/transactions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+token+"\r\nContent-Length: 1000\r\n\r\n{\"op\":")
	if !waitClosed(conn) {
		t.Fatal("a trickled body held the connection past the read timeout")
	}
}

// A flood from one address only ever closes its own connections: a
// client from another address that has not sent its request yet keeps
// its connection, and is served.
func TestConnGuardFloodClosesItsOwn(t *testing.T) {
	f := &fake{t: t, TerminalsFn: func() []sterad.TerminalInfo { return nil }}
	g := &api.ConnGuard{Max: 32, MaxUnauthenticated: 8, MaxUnauthenticatedPerIP: 4}
	addr := guardedServer(t, server(f), g, nil)
	legit, err := net.Dial("tcp", addr) // from 127.0.0.1, says nothing yet
	if err != nil {
		t.Fatal(err)
	}
	defer legit.Close()
	flooder := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	var flood []net.Conn
	for range 100 {
		c, err := flooder.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		flood = append(flood, c)
		defer c.Close()
	}
	// At the bound (8 tokenless) the flood, holding more than its share
	// (4), loses its own oldest: it keeps at most 7, the legit client 1.
	if !waitClosed(flood[90]) {
		t.Fatal("the flood kept more than the room it had")
	}
	// The server accepts the last of the flood after flood[90] is closed:
	// wait until it has seen them all.
	if !testutil.Poll(5*time.Second, func() bool { return g.Stats().Evicted >= 92 }) {
		t.Fatalf("stats %+v: the flood was not evicted", g.Stats())
	}
	if st := g.Stats(); st.Unauthenticated > 8 {
		t.Fatalf("stats %+v", st)
	}
	io.WriteString(legit, "GET /v1/terminals HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+token+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(legit), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the other client's request: %v", err)
	}
}
