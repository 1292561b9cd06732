package main

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/settlement"
)

// loadSettlement reads the fee table, the bank-holiday calendar and the
// cut-off from the configuration.
func (m *Main) loadSettlement() error {
	cfg := m.Config.Settlement
	fees, err := settlement.ParseFeeTable(cfg.FeeRates)
	if err != nil {
		return fmt.Errorf("settlement.fee_rates: %s", sterad.ErrorMessage(err))
	}
	m.fees = settlement.DefaultFees().With(fees)
	m.calendar = settlement.DefaultCalendar()
	if cfg.Holidays != "" {
		if m.calendar, err = settlement.LoadCalendar(cfg.Holidays); err != nil {
			return fmt.Errorf("settlement.holidays: %w", err)
		}
	}
	if m.cutoff, err = settlement.ParseCutoff(cfg.Cutoff); err != nil {
		return fmt.Errorf("settlement.cutoff: %s", sterad.ErrorMessage(err))
	}
	if m.NoNightlyClose {
		m.cutoff = -1
	}
	return nil
}

// summarize is the gateway's hook at batch close: totals by business day
// and brand for the settlement report.
func (m *Main) summarize(txns []*sterad.Transaction) []sterad.DayTotals {
	cutoff := m.cutoff
	if cutoff < 0 {
		cutoff, _ = settlement.ParseCutoff(m.Config.Settlement.Cutoff)
	}
	return settlement.Summarize(txns, cutoff, m.Config.Location())
}

// settlementReport serves GET /v1/reports/settlement?from=&to= as JSON, or
// CSV with Accept: text/csv (or ?format=csv).
func (m *Main) settlementReport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, to, err := settlement.ParseRange(q.Get("from"), q.Get("to"))
	if err != nil {
		api.WriteError(w, err)
		return
	}
	batches, err := m.Gateway.Batches(r.Context())
	if err != nil {
		api.WriteError(w, err)
		return
	}
	rep, err := settlement.Build(batches, from, to, m.fees, m.calendar)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "text/csv") || q.Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="settlement-%s-%s.csv"`, from, to))
		if err := rep.WriteCSV(w); err != nil {
			m.Logger.Error("write settlement CSV", "err", err)
		}
		return
	}
	api.WriteJSON(w, http.StatusOK, rep)
}
