package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
)

func TestDecodeJSONNeverQuotesTheBody(t *testing.T) {
	for _, body := range []string{
		`{"op":"sale","card":{"pan":"4111111111111111","expiry":1}}`,
		`{"op":"sale","card":{"pan":"4111111111111111","cvv":"123"}}`,
		`{"op":"sale","amount":"4111111111111111x`,
		`{"op":"sale","reference":4111111111111111}`,
	} {
		r := httptest.NewRequest("POST", "/v1/transactions", strings.NewReader(body))
		var req api.TransactionRequest
		err := api.DecodeJSON(r, &req)
		if sterad.ErrorKind(err) != sterad.EInvalid {
			t.Errorf("%s: %v", body, err)
		}
		if err != nil && strings.Contains(err.Error(), "4111111111111111") {
			t.Errorf("error quotes the card number: %v", err)
		}
	}
}

func TestFlexAmount(t *testing.T) {
	for in, want := range map[string]string{`"12800"`: "12800", `12800`: "12800", `12800.5`: "12800.5", `null`: "", `-3`: "-3"} {
		var a api.FlexAmount
		if err := json.Unmarshal([]byte(in), &a); err != nil || string(a) != want {
			t.Errorf("%s → %q, %v", in, a, err)
		}
	}
	var a api.FlexAmount
	if err := json.Unmarshal([]byte(`{"yen":1}`), &a); err == nil {
		t.Error("an object was accepted as an amount")
	}
}

func TestErrorStatuses(t *testing.T) {
	for kind, status := range map[string]int{
		sterad.EInvalid: 400, sterad.ENotFound: 404, sterad.EConflict: 409, sterad.EUnavailable: 503, sterad.EInternal: 500,
	} {
		w := httptest.NewRecorder()
		api.WriteError(w, sterad.Errorf(kind, "c", "m"))
		if w.Code != status {
			t.Errorf("%s → %d, want %d", kind, w.Code, status)
		}
		var eb api.ErrorBody
		if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error.Code != "c" || eb.Error.Message != "m" {
			t.Errorf("%s body %s", kind, w.Body)
		}
	}
	// An internal error's text is never shown.
	w := httptest.NewRecorder()
	api.WriteError(w, &json.SyntaxError{})
	if w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "syntax") {
		t.Errorf("internal error: %d %s", w.Code, w.Body)
	}
}

func TestCardInputMasksWhenPrinted(t *testing.T) {
	c := api.CardInput{PAN: "4111111111111111", Expiry: "2812"}
	if s := strings.Join([]string{c.PAN.String(), func() string { b, _ := json.Marshal(c.PAN); return string(b) }()}, " "); strings.Contains(s, "4111111111111111") {
		t.Fatalf("printed: %s", s)
	}
	b, _ := json.Marshal(c) // the client posts the full number to the API
	if !strings.Contains(string(b), "4111111111111111") {
		t.Fatalf("the client must send the number: %s", b)
	}
}
