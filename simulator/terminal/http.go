package terminal

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/sterad/sterad"
)

// maxBody bounds control API request bodies.
const maxBody = 64 << 10

// Handler returns the control API:
//
//	POST /card   {"pan","expiry","entry","action","delay_ms","track2","brand"} → 200 {"queued": n}
//	POST /fault  {"kind","count","ms"}                         → 200 {"kind","count","ms"}
//	GET  /state                                                → 200 State
//	GET  /slips                                                → 200 {"slips": [Slip]}
//	GET  /healthz                                              → 200 {"status": "ok"}
//
// Errors are {"error": {"code", "message"}} with 400 for bad input, 404
// and 405.
func (t *Terminal) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /card", t.postCard)
	mux.HandleFunc("POST /fault", t.postFault)
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, t.State())
	})
	mux.HandleFunc("GET /slips", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"slips": t.Slips()})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	for _, p := range []string{"/card", "/fault", "/state", "/slips", "/healthz"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+p)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return mux
}

func (t *Terminal) postCard(w http.ResponseWriter, r *http.Request) {
	var c Card
	if !decode(w, r, &c) {
		return
	}
	if err := t.PushCard(c); err != nil {
		writeDomainError(w, err)
		return
	}
	t.mu.Lock()
	n := len(t.cards)
	t.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]int{"queued": n})
}

type faultRequest struct {
	Kind  string `json:"kind"`
	Count int    `json:"count"`
	MS    int    `json:"ms"`
}

func (t *Terminal) postFault(w http.ResponseWriter, r *http.Request) {
	var f faultRequest
	if !decode(w, r, &f) {
		return
	}
	if err := t.Fault(f.Kind, f.Count, f.MS); err != nil {
		writeDomainError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// decode reads one JSON object, rejecting unknown fields and trailing data.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "the body must be one JSON object with the documented fields")
		return false
	}
	return true
}

func writeDomainError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	if sterad.ErrorKind(err) == sterad.EInvalid {
		status = http.StatusBadRequest
	}
	writeError(w, status, sterad.ErrorCode(err), sterad.ErrorMessage(err))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
