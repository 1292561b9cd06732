package terminal_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/terminal"
)

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func call(t *testing.T, srv *httptest.Server, method, path, body string, wantStatus int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != wantStatus {
		t.Errorf("%s %s %s: status %d, want %d", method, path, body, resp.StatusCode, wantStatus)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Errorf("%s %s: %v", method, path, err)
		}
	}
}

func TestControlAPI(t *testing.T) {
	term := newTerminal(t)
	srv := httptest.NewServer(term.Handler())
	defer srv.Close()

	var health map[string]string
	call(t, srv, "GET", "/healthz", "", 200, &health)
	if health["status"] != "ok" {
		t.Errorf("healthz = %v", health)
	}

	var q map[string]int
	call(t, srv, "POST", "/card", `{"pan":"5555555555554444","expiry":"2907","entry":"swipe"}`, 200, &q)
	call(t, srv, "POST", "/card", `{"action":"walkaway"}`, 200, &q)
	if q["queued"] != 2 {
		t.Errorf("queued = %v", q)
	}
	for body, code := range map[string]string{
		`{"pan":"41x1"}`:                   "invalid_card",
		`{"expiry":"2899"}`:                "invalid_expiry",
		`{"entry":"nfc"}`:                  "invalid_entry",
		`{"action":"run"}`:                 "invalid_action",
		`{"delay_ms":-3}`:                  "invalid_delay",
		`{"pan":"4111111111111111","x":1}`: "bad_request",
		`not json`:                         "bad_request",
		`{} {}`:                            "bad_request",
	} {
		var e apiError
		call(t, srv, "POST", "/card", body, 400, &e)
		if e.Error.Code != code || e.Error.Message == "" {
			t.Errorf("POST /card %s: error %+v, want %s", body, e.Error, code)
		}
		if strings.Contains(e.Error.Message, "41x1") {
			t.Errorf("error quotes the input: %s", e.Error.Message)
		}
	}

	var f map[string]any
	call(t, srv, "POST", "/fault", `{"kind":"drop_ack","count":2}`, 200, &f)
	if f["kind"] != "drop_ack" {
		t.Errorf("fault = %v", f)
	}
	var e apiError
	call(t, srv, "POST", "/fault", `{"kind":"lightning"}`, 400, &e)
	if e.Error.Code != "invalid_fault" {
		t.Errorf("error = %+v", e)
	}

	// GET /state: the documented keys, the queued cards and armed faults.
	var raw map[string]json.RawMessage
	call(t, srv, "GET", "/state", "", 200, &raw)
	for _, k := range []string{"id", "kind", "boot_id", "state", "current_txn", "link", "connected"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("GET /state lacks %q", k)
		}
	}
	var st terminal.State
	call(t, srv, "GET", "/state", "", 200, &st)
	if st.ID != "FRONT001" || st.State != "idle" || st.BootID != term.BootID() || st.Connected ||
		st.QueuedCards != 2 || st.Faults.DropACK != 2 || st.CurrentTxn != nil {
		t.Errorf("state = %+v", st)
	}
	if strings.Contains(string(raw["link"]), "FramesSent") {
		t.Errorf("link stats not in JSON names: %s", raw["link"])
	}

	call(t, srv, "GET", "/nope", "", 404, &e)
	call(t, srv, "DELETE", "/card", "", 405, &e)
	if e.Error.Code != "method_not_allowed" {
		t.Errorf("405 error = %+v", e)
	}

	// Slips after a sale on a connected terminal; the queued swipe card is used.
	var slips struct{ Slips []terminal.Slip }
	call(t, srv, "GET", "/slips", "", 200, &slips)
	if slips.Slips == nil || len(slips.Slips) != 0 {
		t.Errorf("slips before any sale: %#v", slips)
	}
	g, _ := connect(t, term)
	call(t, srv, "GET", "/state", "", 200, &st)
	if !st.Connected || st.Link.FramesReceived != 1 || st.Link.FramesSent != 1 {
		t.Errorf("connected state: %+v", st)
	}
	g.send(protocol.TypeReadCard, readCard("H1"))
	g.progress("H1", protocol.ProgressPresentCard)
	g.card("H1")
	call(t, srv, "GET", "/state", "", 200, &st)
	if st.State != "card_sent" || st.CurrentTxn == nil || *st.CurrentTxn != "H1" {
		t.Errorf("state during the sale: %+v", st)
	}
	o := outcome("H1")
	o.MaskedPAN = "555555******4444"
	o.Lines = append(o.Lines, "CARD 5555555555554444") // a careless gateway
	g.send(protocol.TypeOutcome, o)
	g.progress("H1", protocol.ProgressPrinting)
	g.result("H1")
	var body strings.Builder
	resp, err := srv.Client().Get(srv.URL + "/slips")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&slips); err != nil {
		t.Fatal(err)
	}
	if len(slips.Slips) != 1 || slips.Slips[0].MaskedPAN != "555555******4444" || slips.Slips[0].AuthCode != "A12345" ||
		slips.Slips[0].Entry != "swipe" || slips.Slips[0].Brand != "mastercard" {
		t.Fatalf("slips = %+v", slips.Slips)
	}
	for _, l := range slips.Slips[0].Lines {
		body.WriteString(l)
	}
	if strings.Contains(body.String(), "5555555555554444") {
		t.Error("a slip shows a full card number")
	}
}
