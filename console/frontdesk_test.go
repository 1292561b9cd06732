package console_test

import (
	"bufio"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sterad/sterad"
)

// events reads a server-sent event stream to its end and returns the
// events as name → data, in order.
func (c *client) events(path string) [][2]string {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.e.srv.URL+path, nil)
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		c.t.Fatalf("%s: Content-Type %q", path, ct)
	}
	var out [][2]string
	var name string
	var data []string
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		case line == "":
			out = append(out, [2]string{name, strings.Join(data, "\n")})
			name, data = "", nil
		}
	}
	return out
}

func TestSaleAtATerminalFollowedLive(t *testing.T) {
	tests := []struct {
		name    string
		outcome sterad.Status
		want    []string // in the last update
	}{
		{"approved", sterad.StatusApproved, []string{"承認", "123456", "411111******1111"}},
		{"declined", sterad.StatusDeclined, []string{"拒否", "declined by the issuer (05)"}},
		{"cancelled", sterad.StatusCancelled, []string{"中止"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.txns.next = []sterad.Status{sterad.StatusPending, tt.outcome}
			c := e.client(t)
			csrf := c.mustLogin("sato")
			idem := field(t, idemRE, c.get("/console/desk").body)
			form := url.Values{"csrf": {csrf}, "idem": {idem}, "op": {"sale"}, "terminal": {"FRONT001"}, "amount": {"¥12,800"}, "reference": {"RSV-1"}}
			res := c.post("/console/desk/pay", form)
			if res.code != http.StatusSeeOther || res.location != "/console/txn/T001/live" {
				t.Fatalf("pay: %d → %q\n%s", res.code, res.location, res.body)
			}
			reqs := e.txns.requests()
			if len(reqs) != 1 || reqs[0].Op != "sale" || reqs[0].Amount != "12800" || reqs[0].Terminal != "FRONT001" || reqs[0].Wait {
				t.Fatalf("submitted %+v", reqs)
			}
			// The same form again (a double click) is the same transaction.
			if res := c.post("/console/desk/pay", form); res.location != "/console/txn/T001/live" || len(e.txns.requests()) != 1 {
				t.Fatalf("second submission: %q, %d requests", res.location, len(e.txns.requests()))
			}
			live := c.get("/console/txn/T001/live")
			if !strings.Contains(live.body, `data-sse="/console/txn/T001/events"`) || !strings.Contains(live.body, "カードを提示してください") {
				t.Fatalf("live page:\n%s", live.body)
			}
			evs := c.events("/console/txn/T001/events")
			if len(evs) < 2 || evs[len(evs)-1][0] != "end" {
				t.Fatalf("events %q", evs)
			}
			last := evs[len(evs)-2]
			for _, w := range tt.want {
				if last[0] != "update" || !strings.Contains(last[1], w) {
					t.Errorf("last update lacks %q:\n%s", w, last[1])
				}
			}
			if !strings.Contains(last[1], `data-status="`+string(tt.outcome)+`"`) {
				t.Errorf("last update is not %s", tt.outcome)
			}
			found := false
			for _, a := range e.store.actions() {
				found = found || a == "sato txn.sale"
			}
			if !found {
				t.Errorf("audit log %v lacks the sale", e.store.actions())
			}
		})
	}
}

func TestServiceRefusalIsShown(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	csrf := c.mustLogin("sato")
	res := c.post("/console/desk/pay", url.Values{"csrf": {csrf}, "idem": {"0123456789abcdef0123"}, "op": {"sale"}, "terminal": {"FRONT001"}, "amount": {"abc"}})
	if res.code != http.StatusBadRequest || !strings.Contains(res.body, "amount") {
		t.Fatalf("bad amount: %d\n%s", res.code, res.body)
	}
}

func seedTxns(e *env) {
	e.txns.add(&sterad.Transaction{ID: "A1", Op: sterad.OpSale, Status: sterad.StatusApproved, Step: sterad.StepDone,
		Amount: sterad.NewAmount(4500, sterad.JPY), MaskedPAN: "411111******1111", Brand: sterad.BrandVisa, AuthCode: "777001",
		Reference: "RSV-0042", Terminal: "FRONT001", CreatedAt: t0, Batch: 42})
	e.txns.add(&sterad.Transaction{ID: "A2", Op: sterad.OpSale, Status: sterad.StatusDeclined, Step: sterad.StepDone,
		Amount: sterad.NewAmount(8000, sterad.JPY), MaskedPAN: "555555******4444", Brand: sterad.BrandMastercard,
		Reference: "RSV-0043", Terminal: "FRONT001", CreatedAt: t0.Add(60e9)})
	e.txns.add(&sterad.Transaction{ID: "OLD", Op: sterad.OpSale, Status: sterad.StatusApproved, Step: sterad.StepDone,
		Amount: sterad.NewAmount(100, sterad.JPY), CreatedAt: t0.Add(-48 * 3600e9)})
}

func TestTodaysTransactionsSearch(t *testing.T) {
	e := newEnv(t)
	seedTxns(e)
	c := e.client(t)
	c.mustLogin("kato")
	tests := []struct {
		query     string
		want, not []string
	}{
		{"", []string{"A1", "A2", "¥4,500"}, []string{`data-txn="OLD"`}},
		{"?q=1111", []string{`data-txn="A1"`}, []string{`data-txn="A2"`}},
		{"?q=rsv-0043", []string{`data-txn="A2"`}, []string{`data-txn="A1"`}},
		{"?status=declined", []string{`data-txn="A2"`}, []string{`data-txn="A1"`}},
		{"?q=nothing", []string{"該当する取引はありません"}, []string{`data-txn="A`}},
		{"?date=2025-03-12", []string{`data-txn="OLD"`}, []string{`data-txn="A1"`}},
	}
	for _, tt := range tests {
		body := c.get("/console/txns" + tt.query).body
		for _, w := range tt.want {
			if !strings.Contains(body, w) {
				t.Errorf("%q: lacks %q", tt.query, w)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(body, n) {
				t.Errorf("%q: shows %q", tt.query, n)
			}
		}
	}
	// htmx asks only for the rows.
	req, _ := http.NewRequest("GET", e.srv.URL+"/console/txns?q=1111", nil)
	req.Header.Set("HX-Request", "true")
	req.Header.Set("HX-Target", "rows")
	res := c.do(req)
	if strings.Contains(res.body, "<html") || !strings.Contains(res.body, `data-txn="A1"`) {
		t.Fatalf("partial:\n%s", res.body)
	}
}

func TestSlipShowsTheMaskedCardOnly(t *testing.T) {
	e := newEnv(t)
	seedTxns(e)
	c := e.client(t)
	c.mustLogin("sato")
	body := c.get("/console/txn/A1").body
	for _, w := range []string{"411111******1111", "777001", "¥4,500", "RSV-0042", `id="refund"`, `id="void"`} {
		if !strings.Contains(body, w) {
			t.Errorf("slip lacks %q", w)
		}
	}
	if body := c.get("/console/txn/A2").body; strings.Contains(body, `id="refund"`) || strings.Contains(body, `id="void"`) {
		t.Error("a declined sale offers a refund or a void")
	}
	if res := c.get("/console/txn/NOPE"); res.code != http.StatusNotFound {
		t.Errorf("unknown transaction: %d", res.code)
	}
}

// TestRefundNeedsConfirmation: the first POST only shows what will
// happen; the refund is submitted by the second.
func TestRefundAndVoidNeedConfirmation(t *testing.T) {
	for _, action := range []string{"refund", "void"} {
		t.Run(action, func(t *testing.T) {
			e := newEnv(t)
			seedTxns(e)
			c := e.client(t)
			csrf := c.mustLogin("sato")
			form := c.get("/console/txn/A1/" + action).body
			idem := field(t, idemRE, form)
			res := c.post("/console/txn/A1/"+action, url.Values{"csrf": {csrf}, "idem": {idem}, "amount": {"1000"}})
			if res.code != 200 || !strings.Contains(res.body, `id="confirm"`) || !strings.Contains(res.body, "よろしいですか") {
				t.Fatalf("first POST: %d\n%s", res.code, res.body)
			}
			if n := len(e.txns.requests()); n != 0 {
				t.Fatalf("%s submitted before confirmation", action)
			}
			res = c.post("/console/txn/A1/"+action, url.Values{"csrf": {csrf}, "idem": {idem}, "amount": {"1000"}, "confirm": {"yes"}})
			if res.code != http.StatusSeeOther || !strings.HasSuffix(res.location, "/live") {
				t.Fatalf("confirmed: %d %q\n%s", res.code, res.location, res.body)
			}
			reqs := e.txns.requests()
			if len(reqs) != 1 || reqs[0].Op != action || reqs[0].Original != "A1" {
				t.Fatalf("submitted %+v", reqs)
			}
			if action == "refund" && reqs[0].Amount != "1000" {
				t.Fatalf("refund amount %q", reqs[0].Amount)
			}
		})
	}
}
