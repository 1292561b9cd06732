package api

import (
	"fmt"
	"net/http"
	"strings"
)

// Simulators are the controls of the test acquirer and the simulated
// terminals that `sterad serve --simulate` embeds, served under /v1/sim/
// (docs/api.md, simulator controls).
type Simulators interface {
	// Acquirer serves the test acquirer's controls (/outage, /delay, …).
	Acquirer() http.Handler
	// Terminal serves the controls of simulated terminal id (/card,
	// /fault, …), or reports that there is none.
	Terminal(id string) (http.Handler, bool)
}

// routeSimulators serves /v1/sim/acquirer/… and /v1/sim/terminals/{id}/…
// with the simulators' own handlers, the prefix stripped.
func (s *Server) routeSimulators(mux *http.ServeMux) {
	mux.Handle("/v1/sim/acquirer/", s.authorize(http.StripPrefix("/v1/sim/acquirer", s.Simulators.Acquirer()).ServeHTTP))
	mux.Handle("/v1/sim/terminals/", s.authorize(func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.Path, "/v1/sim/terminals/")
		id, sub, _ := strings.Cut(rest, "/")
		h, ok := s.Simulators.Terminal(id)
		if !ok {
			WriteJSON(w, http.StatusNotFound, ErrorBody{Error: ErrorDetail{Code: "unknown_terminal", Message: fmt.Sprintf("no simulated terminal %q", id)}})
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + sub
		r2.URL.RawPath = ""
		h.ServeHTTP(w, r2)
	}))
	mux.Handle("/v1/sim/", s.authorize(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, noRoute(r))
	}))
}
