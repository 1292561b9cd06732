package acquirer

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// Handler returns the control API (JSON over HTTP). Paths are relative,
// so it can be mounted under a prefix with http.StripPrefix:
//
//	POST /outage   {"on": true}    close all connections and refuse new ones; {"on": false} ends it
//	POST /delay    {"ms": 2000}    delay every response
//	POST /drop     {"count": 1}    process the next N requests but send no response
//	POST /disagree {"on": true}    answer 95 to every 0500 without BU=1
//	GET  /controls                 the state of the controls above
//	GET  /ledger                   the Ledger
//	GET  /stats                    the Stats
//	GET  /healthz                  {"status": "ok"}
//
// The POSTs answer with the controls' state (GET /controls).
func (h *Host) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /outage", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			On *bool `json:"on"`
		}
		if !decode(w, r, &body) {
			return
		}
		if body.On == nil {
			writeError(w, http.StatusBadRequest, "invalid", `"on" is required`)
			return
		}
		if err := h.SetOutage(*body.On); err != nil {
			writeError(w, http.StatusInternalServerError, "internal", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, h.Controls())
	})
	mux.HandleFunc("POST /delay", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			MS *int64 `json:"ms"`
		}
		if !decode(w, r, &body) {
			return
		}
		if body.MS == nil || *body.MS < 0 {
			writeError(w, http.StatusBadRequest, "invalid", `"ms" must be a number of milliseconds, 0 or more`)
			return
		}
		h.SetDelay(time.Duration(*body.MS) * time.Millisecond)
		writeJSON(w, http.StatusOK, h.Controls())
	})
	mux.HandleFunc("POST /drop", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Count *int `json:"count"`
		}
		if !decode(w, r, &body) {
			return
		}
		if body.Count == nil || *body.Count < 0 {
			writeError(w, http.StatusBadRequest, "invalid", `"count" must be a number, 0 or more`)
			return
		}
		h.Drop(*body.Count)
		writeJSON(w, http.StatusOK, h.Controls())
	})
	mux.HandleFunc("POST /disagree", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			On *bool `json:"on"`
		}
		if !decode(w, r, &body) {
			return
		}
		if body.On == nil {
			writeError(w, http.StatusBadRequest, "invalid", `"on" is required`)
			return
		}
		h.SetDisagree(*body.On)
		writeJSON(w, http.StatusOK, h.Controls())
	})
	mux.HandleFunc("GET /controls", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, h.Controls())
	})
	mux.HandleFunc("GET /ledger", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, h.Ledger())
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, h.Stats())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		msg := "body must be a JSON object"
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			msg = "field " + te.Field + " has the wrong type"
		case errors.As(err, &se), errors.Is(err, io.EOF):
		default:
			msg = err.Error()
		}
		writeError(w, http.StatusBadRequest, "invalid", msg)
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
