package main

import (
	"context"
	"fmt"

	"github.com/sterad/sterad"
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

// settlementReports is the SettlementService: the report of the closed
// batches with the configured fee table and bank-holiday calendar.
type settlementReports struct {
	batches interface {
		Batches(ctx context.Context) ([]*sterad.Batch, error)
	}
	fees     settlement.FeeTable
	calendar *settlement.Calendar
}

// SettlementReport parses the range, then builds the report from every
// batch (settlement.Build keeps the closed ones).
func (s *settlementReports) SettlementReport(ctx context.Context, from, to string) (sterad.SettlementReport, error) {
	f, t, err := settlement.ParseRange(from, to)
	if err != nil {
		return nil, err
	}
	batches, err := s.batches.Batches(ctx)
	if err != nil {
		return nil, err
	}
	rep, err := settlement.Build(batches, f, t, s.fees, s.calendar)
	if err != nil {
		return nil, err
	}
	return settlementReport{rep}, nil
}

// settlementReport is a settlement.Report as a sterad.SettlementReport;
// it encodes as the report itself.
type settlementReport struct{ *settlement.Report }

// Period returns the report's range.
func (r settlementReport) Period() (from, to sterad.Date) { return r.From, r.To }
