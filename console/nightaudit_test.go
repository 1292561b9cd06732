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
