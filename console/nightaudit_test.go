package console_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/sterad/sterad"
)

func TestNightAuditBatchByTerminalAndBrand(t *testing.T) {
	e := newEnv(t)
	seedTxns(e) // A1: visa ¥4,500 approved in batch 42
	c := e.client(t)
	c.mustLogin("kato")
	body := c.get("/console/audit").body
	for _, w := range []string{"バッチ 42", "FRONT001", "¥16,300", "VISA", "¥4,500", `id="close"`} {
		if !strings.Contains(body, w) {
			t.Errorf("audit page lacks %q", w)
		}
	}
	if strings.Contains(body, "MASTERCARD") {
		t.Error("a declined sale is counted in the brand totals")
	}
	if res := e.client(t); true {
		res.mustLogin("sato")
		if got := res.get("/console/audit"); got.code != http.StatusForbidden {
			t.Errorf("a clerk opens the night audit: %d", got.code)
		}
	}
}

func TestBatchCloseWithLiveProgress(t *testing.T) {
	e := newEnv(t)
	e.extra.progress = []sterad.BatchProgress{
		{Batch: 42, Phase: "settling", Terminal: "FRONT001", Running: true},
		{Batch: 42, Phase: "uploading", Terminal: "FRONT001", Uploaded: 1, ToUpload: 2, Running: true},
		{Batch: 42, Phase: "uploading", Terminal: "FRONT001", Uploaded: 2, ToUpload: 2, Running: true},
	}
	c := e.client(t)
	csrf := c.mustLogin("kato")
	if res := c.post("/console/audit/close", url.Values{}); res.code != http.StatusForbidden {
		t.Fatalf("close without CSRF token: %d", res.code)
	}
	res := c.post("/console/audit/close", url.Values{"csrf": {csrf}})
	if res.code != http.StatusSeeOther || res.location != "/console/audit/close/42" {
		t.Fatalf("close: %d %q", res.code, res.location)
	}
	evs := c.events("/console/audit/close/42/events")
	var all []string
	for _, ev := range evs {
		all = append(all, ev[0]+": "+ev[1])
	}
	joined := strings.Join(all, "\n")
	for _, w := range []string{"settling", "送信 1 / 2 件", `aria-valuenow="50"`, `data-state="closed"`, `aria-valuenow="100"`, "締め処理が完了しました"} {
		if !strings.Contains(joined, w) {
			t.Errorf("the close's events lack %q", w)
		}
	}
	if evs[len(evs)-1][0] != "end" {
		t.Errorf("the stream does not end: %q", evs[len(evs)-1])
	}
	if !strings.Contains(strings.Join(e.store.actions(), ","), "kato batch.close") {
		t.Errorf("audit log %v lacks the close", e.store.actions())
	}
	if body := c.get("/console/audit/batches").body; !strings.Contains(body, `data-batch="41"`) || !strings.Contains(body, "¥45,000") {
		t.Error("batch history lacks batch 41")
	}
}

func TestSettlementChartAndCSV(t *testing.T) {
	e := newEnv(t)
	e.extra.payouts = []fakePayout{{"2025-03-20", 120000}, {"2025-03-17", 30000}, {"2025-03-25", 60000}}
	c := e.client(t)
	c.mustLogin("kato")
	body := c.get("/console/audit/settlement?from=2025-03-01&to=2025-03-14").body
	bars := regexp.MustCompile(`<g class="bar" data-date="([0-9-]+)" data-paid="(\d+)"><rect x="\d+" y="(\d+)" width="\d+" height="(\d+)"`).FindAllStringSubmatch(body, -1)
	if len(bars) != 3 {
		t.Fatalf("%d bars:\n%s", len(bars), body)
	}
	if bars[0][1] != "2025-03-17" || bars[1][1] != "2025-03-20" || bars[2][1] != "2025-03-25" {
		t.Errorf("bars not in date order: %q", bars)
	}
	// The biggest payout is the tallest bar, half of it half as tall.
	if bars[1][4] != "200" || bars[2][4] != "100" || bars[0][4] != "50" {
		t.Errorf("bar heights %s %s %s, want 50 200 100", bars[0][4], bars[1][4], bars[2][4])
	}
	if !strings.Contains(body, "¥210,000") {
		t.Error("the total is missing")
	}
	res := c.get("/console/audit/settlement.csv?from=2025-03-01&to=2025-03-14")
	if res.code != 200 || !strings.HasPrefix(res.header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(res.header.Get("Content-Disposition"), "settlement-2025-03-01-2025-03-14.csv") ||
		!strings.Contains(res.body, "2025-03-20,120000") {
		t.Fatalf("CSV: %d %v\n%s", res.code, res.header, res.body)
	}
	if res := c.get("/console/audit/settlement?from=2025-03-14&to=2025-03-01"); res.code != http.StatusBadRequest {
		t.Errorf("reversed range: %d", res.code)
	}
}

func TestAlerts(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	c.mustLogin("kato")
	if body := c.get("/console/audit/alerts").body; !strings.Contains(body, `id="no-alerts"`) {
		t.Error("no alerts is not said")
	}
	e.extra.alerts = []*sterad.Transaction{{ID: "S1", Op: sterad.OpSale, Status: sterad.StatusDeclined, Amount: sterad.NewAmount(9000, sterad.JPY), MaskedPAN: "400000******0002"}}
	e.extra.queue = []sterad.QueueItem{{Seq: 1, TxnID: "Q1", Kind: sterad.QueueAdvice, Attempts: 12, Parked: true, LastError: "no response"}}
	body := c.get("/console/audit/alerts").body
	for _, w := range []string{"S1", "400000******0002", "Q1", "試行 12 回", "オフライン承認後に拒否"} {
		if !strings.Contains(body, w) {
			t.Errorf("alerts lack %q", w)
		}
	}
}

func TestAlertsShowOldHoldsAndTodaysCheckouts(t *testing.T) {
	e := newEnv(t)
	stay := &sterad.Stay{CheckIn: sterad.Date{Year: 2025, Month: 3, Day: 13}, CheckOut: sterad.Date{Year: 2025, Month: 3, Day: 14}}
	e.pay.holds = []sterad.Hold{
		{ID: "OLDHOLD", Reference: "RSV-OLD", Amount: sterad.NewAmount(40000, sterad.JPY), MaskedPAN: "411111******1111", CreatedAt: t0.Add(-9 * 24 * 3600e9), Age: 9 * 24 * 3600e9, Old: true},
		{ID: "DUEHOLD", Reference: "RSV-DUE", Amount: sterad.NewAmount(20000, sterad.JPY), Stay: stay, CreatedAt: t0.Add(-24 * 3600e9), Age: 24 * 3600e9, CheckoutToday: true},
		{ID: "FINE", Reference: "RSV-FINE", Amount: sterad.NewAmount(20000, sterad.JPY), CreatedAt: t0, Age: 3600e9},
	}
	c := e.client(t)
	c.mustLogin("kato")
	body := c.get("/console/audit/alerts").body
	old := body[strings.Index(body, "期限の近い仮売上"):]
	due := body[strings.Index(body, "本日チェックアウトの仮売上"):]
	if !strings.Contains(old, `data-hold="OLDHOLD"`) || !strings.Contains(old, "9.0 日") {
		t.Errorf("old holds lack OLDHOLD:\n%s", body)
	}
	if !strings.Contains(due, `data-hold="DUEHOLD"`) || strings.Contains(due, `data-hold="OLDHOLD"`) {
		t.Errorf("today's check-outs:\n%s", due)
	}
	if strings.Contains(body, `data-hold="FINE"`) || strings.Contains(body, `id="no-alerts"`) {
		t.Error("a recent hold is an alert, or the holds are not")
	}
}

func TestVoucherClaimTableAndCSV(t *testing.T) {
	e := newEnv(t)
	e.pay.report = sterad.VoucherReport{Month: sterad.YearMonth{Year: 2025, Month: 3},
		Claims: []sterad.VoucherClaim{{Program: "OITA2016", Name: "おおいた宿泊券", Month: sterad.YearMonth{Year: 2025, Month: 3}, Vouchers: 3, Total: sterad.NewAmount(15000, sterad.JPY), Due: sterad.Date{Year: 2025, Month: 4, Day: 10}}},
		Log:    []sterad.VoucherLogEntry{{Number: "0000000001", Program: "OITA2016", Reference: "RSV-1", Applied: sterad.NewAmount(5000, sterad.JPY), HolderMatches: true, Transaction: "C1"}}}
	c := e.client(t)
	c.mustLogin("kato")
	res := c.get("/console/audit/vouchers")
	if res.code != 200 {
		t.Fatalf("vouchers: %d\n%s", res.code, res.body)
	}
	for _, w := range []string{`data-program="OITA2016"`, "おおいた宿泊券", "¥15,000", "2025-04-10", "0000000001", `href="/console/txn/C1"`} {
		if !strings.Contains(res.body, w) {
			t.Errorf("voucher page lacks %q", w)
		}
	}
	if got := e.pay.months; len(got) != 1 || got[0] != "2025-03" {
		t.Errorf("asked months %v, want this month 2025-03", got)
	}
	csv := c.get("/console/audit/vouchers.csv?month=2025-03")
	if csv.code != 200 || !strings.HasPrefix(csv.header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(csv.header.Get("Content-Disposition"), "vouchers-claim-2025-03.csv") ||
		!strings.HasPrefix(csv.body, "program,name,month,vouchers,total,due\n") || !strings.Contains(csv.body, "OITA2016,おおいた宿泊券,2025-03,3,15000,2025-04-10") {
		t.Fatalf("claim CSV: %d %v\n%s", csv.code, csv.header, csv.body)
	}
	if log := c.get("/console/audit/vouchers.csv?month=2025-03&part=log"); !strings.HasPrefix(log.body, "number,program") || !strings.Contains(log.body, "0000000001,OITA2016") {
		t.Errorf("log CSV:\n%s", log.body)
	}
	if res := c.get("/console/audit/vouchers?month=march"); res.code != http.StatusBadRequest {
		t.Errorf("bad month: %d", res.code)
	}
	if !strings.Contains(strings.Join(e.store.actions(), ","), "kato vouchers.csv") {
		t.Error("the CSV download is not audited")
	}
}
