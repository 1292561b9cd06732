package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/offline"
	"github.com/sterad/sterad/simulator/terminal"
)

// scrape reads /metrics as Prometheus would.
func (d *testDaemon) scrape() map[string]*dto.MetricFamily {
	d.t.Helper()
	var body strings.Builder
	if _, err := d.c.Do(context.Background(), http.MethodGet, "/metrics", nil, nil, &body); err != nil {
		d.t.Fatalf("GET /metrics: %v", err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body.String()))
	if err != nil {
		d.t.Fatalf("parse /metrics: %v\n%s", err, body.String())
	}
	return fams
}

// sample returns the value of the series of family name whose labels
// include want (a counter's or gauge's value, a histogram's count), summed
// over the series that match; found is false when none does.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (v float64, found bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for k, val := range want {
			if !slices.ContainsFunc(m.Label, func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == val }) {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Histogram != nil:
			v += float64(m.Histogram.GetSampleCount())
		}
	}
	return v, found
}

// metricsDaemon is a simulated daemon after a few operations: two
// approved sales (keyed, at the terminal), a declined one, an open
// pre-authorization at the terminal, a transaction looked up, a batch
// closed, a retention run.
func metricsDaemon(t *testing.T) *testDaemon {
	t.Helper()
	d := startDaemon(t, clearMode)
	ctx := context.Background()
	s := d.post(api.TransactionRequest{Op: "sale", Amount: "12000", Card: keyed("4111111111111111")})
	if s.Status != "approved" {
		t.Fatalf("sale: %+v", s)
	}
	if _, _, err := d.c.CreateTransaction(ctx, api.TransactionRequest{Op: "sale", Amount: "3000", Card: keyed("4000000000000002")}, api.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "declined") {
		t.Fatalf("declined sale: %v", err)
	}
	d.card("FRONT001", terminal.Card{PAN: "5555555555554444"})
	if x := d.post(api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "4500"}); x.Status != "approved" {
		t.Fatalf("terminal sale: %+v", x)
	}
	if _, err := d.c.Transaction(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	var closed api.BatchView
	if _, err := d.c.Do(ctx, http.MethodPost, "/v1/batches/close", nil, nil, &closed); err != nil {
		t.Fatal(err)
	}
	d.card("FRONT001", terminal.Card{PAN: "4111111111111111"})
	if x := d.post(api.TransactionRequest{Op: "preauth", Terminal: "FRONT001", Amount: "20000", Reference: "RSV-M1", Stay: &api.StayInput{CheckIn: jstDay(0), CheckOut: jstDay(2)}}); x.Status != "approved" {
		t.Fatalf("preauth: %+v", x)
	}
	var ret offline.RetentionResult
	if _, err := d.c.Do(ctx, http.MethodPost, retentionRoute, nil, nil, &ret); err != nil || ret.DryRun || ret.Removed != 0 {
		t.Fatalf("retention through the API: %+v, %v", ret, err)
	}
	return d
}

func TestMetricsAfterOperations(t *testing.T) {
	d := metricsDaemon(t)
	fams := d.scrape()
	checks := []struct {
		name   string
		labels map[string]string
		ok     func(float64) bool
		want   string
	}{
		{"sterad_transactions_total", map[string]string{"op": "sale", "status": "approved"}, eq(2), "2 approved sales"},
		{"sterad_transactions_total", map[string]string{"op": "sale", "status": "declined"}, eq(1), "1 declined sale"},
		{"sterad_transactions_total", map[string]string{"op": "preauth", "status": "approved"}, eq(1), "1 pre-authorization"},
		{"sterad_api_request_duration_seconds", map[string]string{"route": "POST /v1/transactions"}, eq(4), "4 payment requests"},
		{"sterad_api_request_duration_seconds", map[string]string{"route": "GET /v1/transactions/{id}", "code": "200"}, eq(1), "the lookup, by its route pattern"},
		{"sterad_api_request_duration_seconds", map[string]string{"route": "POST " + retentionRoute, "code": "200"}, eq(1), "the retention run"},
		{"sterad_acquirer_exchange_duration_seconds", map[string]string{"mti_class": "02", "outcome": "approved"}, eq(2), "2 approved 0200s"},
		{"sterad_acquirer_exchange_duration_seconds", map[string]string{"mti_class": "02", "outcome": "declined"}, eq(1), "1 declined 0200"},
		{"sterad_acquirer_exchange_duration_seconds", map[string]string{"mti_class": "01", "outcome": "approved"}, eq(1), "1 approved 0100"},
		{"sterad_acquirer_exchange_duration_seconds", map[string]string{"mti_class": "05"}, atLeast(1), "the batch close's 0500s"},
		{"sterad_terminal_operation_duration_seconds", map[string]string{"op": "read_card"}, eq(2), "2 cards read"},
		{"sterad_terminal_operation_duration_seconds", map[string]string{"op": "show_outcome"}, eq(2), "2 outcomes shown"},
		{"sterad_store_commit_duration_seconds", nil, atLeast(8), "at least two commits for each of the 4 payments"},
		{"sterad_batch_close_failures_total", nil, eq(0), "no failed close"},
		{"sterad_batch_open_age_seconds", nil, func(v float64) bool { return v >= 0 && v < 3600 }, "the batch opened by the close: seconds old"},
		{"sterad_batch_closing", nil, eq(0), "no batch closing"},
		{"sterad_vault_guarantees", nil, eq(0), "no guarantee kept"},
		{"sterad_open_holds", nil, eq(1), "the open pre-authorization"},
		{"sterad_open_holds_old", nil, eq(0), "no old hold"},
		{"sterad_store_size_bytes", map[string]string{"file": "database"}, atLeast(16 << 10), "the database's bytes"},
		{"sterad_store_size_bytes", map[string]string{"file": "keys"}, atLeast(64), "the key files' bytes"},
		{"sterad_store_used_bytes", nil, atLeast(16 << 10), "the data's bytes"},
		{"sterad_store_free_bytes", nil, atLeast(0), "free bytes"},
		{"sterad_retention_runs_total", map[string]string{"result": "ok"}, eq(1), "one retention run"},
		{"sterad_retention_last_success_timestamp_seconds", nil, atLeast(1e9), "when it ran"},
		// Metrics that were there before stay.
		{"sterad_acquirer_online", nil, eq(1), "the acquirer online"},
		{"sterad_queue_depth", nil, eq(0), "an empty queue"},
		{"sterad_store_commits_total", nil, atLeast(5), "commits"},
	}
	for _, c := range checks {
		v, found := sample(fams, c.name, c.labels)
		if !found || !c.ok(v) {
			t.Errorf("%s%v = %v (found %v), want %s", c.name, c.labels, v, found, c.want)
		}
	}
	// Route labels are patterns, never paths with IDs.
	for _, m := range fams["sterad_api_request_duration_seconds"].GetMetric() {
		for _, l := range m.Label {
			if l.GetName() == "route" && strings.Contains(l.GetValue(), "01") {
				t.Errorf("route label %q holds an ID", l.GetValue())
			}
		}
	}
}

func eq(want float64) func(float64) bool     { return func(v float64) bool { return v == want } }
func atLeast(min float64) func(float64) bool { return func(v float64) bool { return v >= min } }

// exportedNames are the series names a scrape holds: each family's name,
// and a histogram's _bucket, _sum and _count.
func exportedNames(fams map[string]*dto.MetricFamily) map[string]bool {
	out := map[string]bool{}
	for name, f := range fams {
		out[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[name+s] = true
			}
		}
	}
	return out
}

// TestDashboardNamesExportedMetrics: every PromQL expression of the
// Grafana dashboard names only metrics sterad exports.
func TestDashboardNamesExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("../../dashboards/sterad.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboards/sterad.json: %v", err)
	}
	exprs := collectExprs(dash)
	if len(exprs) < 15 {
		t.Fatalf("%d expressions found in the dashboard, want a panel for each metric", len(exprs))
	}
	exported := exportedNames(metricsDaemon(t).scrape())
	used := map[string]bool{}
	for _, e := range exprs {
		names, err := promqlMetricNames(e)
		if err != nil {
			t.Errorf("expression %q: %v", e, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("expression %q names no metric", e)
		}
		for _, n := range names {
			used[n] = true
			if !exported[n] {
				t.Errorf("expression %q names %s, which sterad does not export", e, n)
			}
		}
	}
	// Every family the issue asks for has a panel.
	for _, n := range []string{"sterad_transactions_total", "sterad_api_request_duration_seconds_bucket",
		"sterad_acquirer_exchange_duration_seconds_bucket", "sterad_terminal_operation_duration_seconds_bucket", "sterad_store_commit_duration_seconds_bucket",
		"sterad_batch_close_failures_total", "sterad_batch_open_age_seconds", "sterad_vault_guarantees",
		"sterad_store_size_bytes", "sterad_open_holds", "sterad_open_holds_old"} {
		if !used[n] {
			t.Errorf("no panel of the dashboard shows %s", n)
		}
	}
}

// collectExprs returns every "expr" string of the dashboard (panel
// targets, rows' panels) and the templating variables' queries.
func collectExprs(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && k == "expr" && s != "" {
				out = append(out, s)
				continue
			}
			out = append(out, collectExprs(val)...)
		}
	case []any:
		for _, val := range x {
			out = append(out, collectExprs(val)...)
		}
	}
	return out
}

func TestPromQLMetricNames(t *testing.T) {
	cases := []struct {
		expr string
		want []string
	}{
		{`sterad_queue_depth`, []string{"sterad_queue_depth"}},
		{`sum by (status) (rate(sterad_transactions_total{op="sale", status!~"app.*"}[$__rate_interval]))`, []string{"sterad_transactions_total"}},
		{`histogram_quantile(0.95, sum by (le, route) (rate(sterad_api_request_duration_seconds_bucket[5m])))`, []string{"sterad_api_request_duration_seconds_bucket"}},
		{`time() - sterad_retention_last_success_timestamp_seconds > bool 86400 * 2`, []string{"sterad_retention_last_success_timestamp_seconds"}},
		{`sum(rate(a_total{x="by (y)"}[1h] offset 1d)) / ignoring(code) group_left sum without (op) (b_total)`, []string{"a_total", "b_total"}},
		{`{__name__="sterad_open_holds"}`, nil},
		{`sterad_open_holds_old and on() sterad_open_holds > 0 unless sterad_batch_closing`, []string{"sterad_open_holds_old", "sterad_open_holds", "sterad_batch_closing"}},
	}
	for _, c := range cases {
		got, err := promqlMetricNames(c.expr)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("promqlMetricNames(%q) = %q, %v; want %q", c.expr, got, err, c.want)
		}
	}
}

// promqlMetricNames returns the metric names of a PromQL expression: the
// identifiers outside label matchers, ranges and strings that are not a
// function, an aggregation, a keyword or a label list of by, without,
// on, ignoring, group_left or group_right. Grafana's variables ($x,
// ${x}) are skipped.
func promqlMetricNames(expr string) ([]string, error) {
	keywords := map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
		// Aggregations, which may come before by (…) and their argument.
		"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
		"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true}
	labelLists := map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	isIdent := func(r rune, first bool) bool {
		return r == '_' || r == ':' || unicode.IsLetter(r) || !first && unicode.IsDigit(r)
	}
	rs := []rune(expr)
	var out []string
	skipSpace := func(i int) int {
		for i < len(rs) && unicode.IsSpace(rs[i]) {
			i++
		}
		return i
	}
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case r == '"' || r == '\'' || r == '`':
			j := i + 1
			for j < len(rs) && rs[j] != r {
				if rs[j] == '\\' && r != '`' {
					j++
				}
				j++
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("unterminated string")
			}
			i = j + 1
		case r == '{' || r == '[':
			// Label matchers or a range: no metric names inside.
			closer := map[rune]rune{'{': '}', '[': ']'}[r]
			j := i + 1
			for j < len(rs) && rs[j] != closer {
				if rs[j] == '"' || rs[j] == '\'' || rs[j] == '`' {
					q := rs[j]
					for j++; j < len(rs) && rs[j] != q; j++ {
						if rs[j] == '\\' {
							j++
						}
					}
				}
				j++
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("unterminated %c", r)
			}
			i = j + 1
		case r == '$':
			i++
			if i < len(rs) && rs[i] == '{' {
				for i < len(rs) && rs[i] != '}' {
					i++
				}
				i++
				continue
			}
			for i < len(rs) && isIdent(rs[i], false) {
				i++
			}
		case unicode.IsDigit(r) || r == '.':
			for i < len(rs) && (isIdent(rs[i], false) || rs[i] == '.') {
				i++
			}
		case isIdent(r, true):
			j := i
			for j < len(rs) && isIdent(rs[j], false) {
				j++
			}
			word := string(rs[i:j])
			k := skipSpace(j)
			switch {
			case labelLists[strings.ToLower(word)]:
				// Skip its label list, if any.
				if k < len(rs) && rs[k] == '(' {
					for k < len(rs) && rs[k] != ')' {
						k++
					}
					j = k + 1
				}
			case keywords[strings.ToLower(word)]:
			case k < len(rs) && rs[k] == '(':
				// A function or an aggregation.
			default:
				out = append(out, word)
			}
			i = j
		default:
			i++
		}
	}
	return out, nil
}
