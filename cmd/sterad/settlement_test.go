package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/settlement"
)

type batchList []*sterad.Batch

func (l batchList) Batches(context.Context) ([]*sterad.Batch, error) { return l, nil }

// The report the API serves is the settlement package's, as JSON and as
// CSV, over the range asked for.
func TestSettlementReportIsTheSettlementPackages(t *testing.T) {
	day := sterad.Date{Year: 2026, Month: 11, Day: 5}
	batches := batchList{
		{Number: 1, State: sterad.BatchClosed, Days: []sterad.DayTotals{{Day: day, Brand: sterad.BrandVisa, DebitCount: 2, DebitAmount: 20000}}},
		{Number: 2, State: sterad.BatchOpen},
	}
	s := &settlementReports{batches: batches, fees: settlement.DefaultFees(), calendar: settlement.DefaultCalendar()}
	rep, err := s.SettlementReport(context.Background(), "2026-11-01", "2026-11-30")
	if err != nil {
		t.Fatal(err)
	}
	from, to, _ := settlement.ParseRange("2026-11-01", "2026-11-30")
	want, err := settlement.Build(batches, from, to, settlement.DefaultFees(), settlement.DefaultCalendar())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(rep)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(got, wantJSON) {
		t.Errorf("JSON\n%s\nwant\n%s", got, wantJSON)
	}
	var gotCSV, wantCSV bytes.Buffer
	if err := rep.WriteCSV(&gotCSV); err != nil || want.WriteCSV(&wantCSV) != nil || gotCSV.String() != wantCSV.String() {
		t.Errorf("CSV %v\n%s\nwant\n%s", err, gotCSV.String(), wantCSV.String())
	}
	if f, tt := rep.Period(); f != from || tt != to {
		t.Errorf("period %s–%s", f, tt)
	}
	for _, r := range [][2]string{{"2026-11-30", "2026-11-01"}, {"", "2026-11-01"}, {"2026-13-01", "2026-12-01"}} {
		if _, err := s.SettlementReport(context.Background(), r[0], r[1]); sterad.ErrorKind(err) != sterad.EInvalid {
			t.Errorf("%q–%q: %v", r[0], r[1], err)
		}
	}
}
