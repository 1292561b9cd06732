package api

import (
	"fmt"
	"net/http"
	"strings"
)

// handleSettlementReport serves GET /v1/reports/settlement?from=&to= as
// JSON, or as CSV with Accept: text/csv (or ?format=csv).
func (s *Server) handleSettlementReport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rep, err := s.Settlement.SettlementReport(r.Context(), q.Get("from"), q.Get("to"))
	if err != nil {
		WriteError(w, err)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "text/csv") || q.Get("format") == "csv" {
		from, to := rep.Period()
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="settlement-%s-%s.csv"`, from, to))
		if err := rep.WriteCSV(w); err != nil {
			s.Logger.Error("write settlement CSV", "err", err)
		}
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
