package main

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sterad/sterad"
)

// metricsHandler serves Prometheus metrics: the daemon's counters and
// histograms (daemonMetrics), and gauges read at scrape time from the
// parts of the daemon: the acquirer link, the terminals, the queue, the
// batches, the vault, the holds, the store.
func (m *Main) metricsHandler() http.Handler {
	return promhttp.HandlerFor(m.metricsRegistry(), promhttp.HandlerOpts{})
}

// metricsRegistry is the registry /metrics serves.
func (m *Main) metricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &collector{m: m})
	m.meters().register(reg)
	return reg
}

// daemonMetrics are the metrics counted as things happen.
type daemonMetrics struct {
	txns      *prometheus.CounterVec
	api       *prometheus.HistogramVec
	acquirer  *prometheus.HistogramVec
	terminal  *prometheus.HistogramVec
	retention *prometheus.CounterVec
	lastRet   prometheus.Gauge
	commit    prometheus.Histogram

	mu       sync.Mutex
	inFlight map[string]bool // transactions seen unfinished since the start
}

// meters returns the daemon's metrics, made on first use.
func (m *Main) meters() *daemonMetrics {
	m.metricsOnce.Do(func() { m.metrics = newDaemonMetrics() })
	return m.metrics
}

func newDaemonMetrics() *daemonMetrics {
	return &daemonMetrics{
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sterad_transactions_total",
			Help: "Transactions whose flow ended (step done), by operation and status (approved, declined, reversed, voided, cancelled, stood_in, unknown)."},
			[]string{"op", "status"}),
		api: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sterad_api_request_duration_seconds",
			Help:    "API requests by route pattern and HTTP status code. A payment's request waits for the card and the acquirer.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120}},
			[]string{"route", "code"}),
		acquirer: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sterad_acquirer_exchange_duration_seconds",
			Help:    "Exchanges with the acquirer by message class (01 authorization, 02 financial, 03 batch upload, 04 void/reversal, 05 reconciliation) and outcome.",
			Buckets: []float64{.025, .05, .1, .25, .5, 1, 2, 3, 5, 8, 10, 15, 20, 30}},
			[]string{"mti_class", "outcome"}),
		terminal: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sterad_terminal_operation_duration_seconds",
			Help:    "Operations at the payment terminals (read_card includes the guest's time to present the card).",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300}},
			[]string{"op"}),
		retention: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sterad_retention_runs_total",
			Help: "Retention runs by result (ok, failed)."}, []string{"result"}),
		lastRet: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sterad_retention_last_success_timestamp_seconds",
			Help: "When retention last ran without error (Unix time; 0: not since the start)."}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sterad_store_commit_duration_seconds",
			Help:    "Changes written to the store: from the request to the commit, durable (the wait for the group commit and the disk's fsyncs). Each payment waits for two.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1}}),
		inFlight: map[string]bool{},
	}
}

func (d *daemonMetrics) register(reg *prometheus.Registry) {
	reg.MustRegister(d.txns, d.api, d.acquirer, d.terminal, d.retention, d.lastRet, d.commit)
}

// ending returns the transactions that puts would finish that were
// unfinished before the start (the metrics have not seen them in flight):
// those stored unfinished, which the store's index says without reading
// them. Asked before the commit; nothing else is kept of them, so a
// start with 100,000 queued advices costs the metrics no memory.
func (d *daemonMetrics) ending(ctx context.Context, s sterad.Store, puts []*sterad.Transaction) map[string]bool {
	var out map[string]bool
	for _, t := range puts {
		// Version 0: created by this change.
		if t.Step != sterad.StepDone || t.Version == 0 || d.flying(t.ID) {
			continue
		}
		if open, err := s.IsUnfinished(ctx, t.ID); err == nil && open {
			if out == nil {
				out = map[string]bool{}
			}
			out[t.ID] = true
		}
	}
	return out
}

func (d *daemonMetrics) flying(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.inFlight[id]
}

// applied counts the transactions of a committed change whose flow ended:
// new ones already done, ones seen unfinished that are now done, and the
// ones ending says were unfinished before. Later writes of a finished
// transaction (a refund recorded on its sale) are not counted again.
func (d *daemonMetrics) applied(c *sterad.Change, ending map[string]bool) {
	if len(c.Put) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range c.Put {
		// Apply advanced Version: 1 is a transaction just created.
		if t.Step != sterad.StepDone {
			d.inFlight[t.ID] = true
			continue
		}
		if d.inFlight[t.ID] || t.Version == 1 || ending[t.ID] {
			delete(d.inFlight, t.ID)
			d.txns.WithLabelValues(string(t.Op), string(t.Status)).Inc()
		}
	}
}

// meteredStore counts the transactions' outcomes as they are committed,
// and times the commits.
type meteredStore struct {
	sterad.Store
	d *daemonMetrics
}

func (s meteredStore) Apply(ctx context.Context, c sterad.Change) error {
	ending := s.d.ending(ctx, s.Store, c.Put)
	start := time.Now()
	err := s.Store.Apply(ctx, c)
	if err == nil {
		s.d.commit.Observe(time.Since(start).Seconds())
		s.d.applied(&c, ending)
	}
	return err
}

// meteredAcquirer times the exchanges with the acquirer.
type meteredAcquirer struct {
	sterad.Acquirer
	h *prometheus.HistogramVec
}

func (a meteredAcquirer) Exchange(ctx context.Context, req *sterad.HostMessage) (*sterad.HostMessage, error) {
	start := time.Now()
	resp, err := a.Acquirer.Exchange(ctx, req)
	a.h.WithLabelValues(req.MTI.Class(), exchangeOutcome(req, resp, err)).Observe(time.Since(start).Seconds())
	return resp, err
}

// exchangeOutcome names an exchange's outcome for the metrics.
func exchangeOutcome(req, resp *sterad.HostMessage, err error) string {
	switch {
	case err != nil && sterad.ErrorCode(err) == sterad.ErrHostUnavailable.Code:
		return "unavailable"
	case err != nil && sterad.ErrorCode(err) == sterad.ErrNoResponse.Code:
		return "no_response"
	case err != nil:
		return "error"
	case sterad.CheckAnswer(req, resp) != nil:
		return "bad_answer"
	}
	switch sterad.LookupResponse(resp.ResponseCode).Outcome {
	case sterad.OutcomeApproved:
		return "approved"
	case sterad.OutcomeDeclined:
		return "declined"
	case sterad.OutcomeReconcile:
		return "reconcile"
	}
	return "unknown"
}

// meteredTerminal times the operations at a terminal.
type meteredTerminal struct {
	sterad.Terminal
	h *prometheus.HistogramVec
}

func (t meteredTerminal) observe(op string, start time.Time) {
	t.h.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (t meteredTerminal) ReadCard(ctx context.Context, req sterad.CardRequest, persist func(*sterad.Card) error) (*sterad.Card, error) {
	defer t.observe("read_card", time.Now())
	return t.Terminal.ReadCard(ctx, req, persist)
}

func (t meteredTerminal) ShowOutcome(ctx context.Context, o sterad.TerminalOutcome, persist func(sterad.TerminalResult) error) (sterad.TerminalResult, error) {
	defer t.observe("show_outcome", time.Now())
	return t.Terminal.ShowOutcome(ctx, o, persist)
}

func (t meteredTerminal) Cancel(ctx context.Context, txnID string) (bool, string, error) {
	defer t.observe("cancel", time.Now())
	return t.Terminal.Cancel(ctx, txnID)
}

func (t meteredTerminal) Query(ctx context.Context, txnID string) (sterad.TerminalTxnState, error) {
	defer t.observe("query", time.Now())
	return t.Terminal.Query(ctx, txnID)
}

// instrument times the API's requests by the route pattern the mux
// matched (bounded: never the path itself) and the status code.
func (d *daemonMetrics) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			route := r.Pattern // set in place by the muxes as they route
			if route == "" {
				route = "other"
			}
			code := sw.code
			if code == 0 {
				code = http.StatusOK
			}
			d.api.WithLabelValues(route, strconv.Itoa(code)).Observe(time.Since(start).Seconds())
		}()
		h.ServeHTTP(sw, r)
	})
}

// statusWriter records the status code of an answer.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush and Unwrap keep streaming answers (backups) and
// http.ResponseController working.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type collector struct{ m *Main }

var (
	descAcqOnline   = prometheus.NewDesc("sterad_acquirer_online", "1 when the acquirer link is signed on.", nil, nil)
	descAcqRequests = prometheus.NewDesc("sterad_acquirer_requests_total", "Requests sent to the acquirer.", nil, nil)
	descAcqTimeouts = prometheus.NewDesc("sterad_acquirer_timeouts_total", "Requests without a response in time.", nil, nil)
	descAcqLate     = prometheus.NewDesc("sterad_acquirer_late_responses_total", "Responses that came after the gateway stopped waiting (never used).", nil, nil)
	descAcqBad      = prometheus.NewDesc("sterad_acquirer_malformed_total", "Malformed or oversized messages from the acquirer.", nil, nil)
	descAcqReconn   = prometheus.NewDesc("sterad_acquirer_reconnects_total", "Reconnections to the acquirer.", nil, nil)
	descTermUp      = prometheus.NewDesc("sterad_terminal_state", "1 for the terminal's current state.", []string{"terminal", "state"}, nil)
	descQueueDepth  = prometheus.NewDesc("sterad_queue_depth", "Messages owed to the acquirer (store-and-forward).", nil, nil)
	descQueueParked = prometheus.NewDesc("sterad_queue_parked", "Queued messages older than offline.max_age, kept for an operator.", nil, nil)
	descAlerts      = prometheus.NewDesc("sterad_offline_declined", "Offline approvals the issuer later declined: the hotel must collect another way.", nil, nil)
	descCommits     = prometheus.NewDesc("sterad_store_commits_total", "Durable store commits.", nil, nil)
	descApplies     = prometheus.NewDesc("sterad_store_changes_total", "Changes written to the store (grouped into commits).", nil, nil)

	descCloseFailed = prometheus.NewDesc("sterad_batch_close_failures_total", "Batch close attempts that did not finish (each is retried), over every batch the store holds.", nil, nil)
	descBatchAge    = prometheus.NewDesc("sterad_batch_open_age_seconds", "Age of the open batch: the nightly close keeps it under a day.", nil, nil)
	descBatchClosin = prometheus.NewDesc("sterad_batch_closing", "1 while a batch is left closing (a close failed and waits for its retry).", nil, nil)
	descVault       = prometheus.NewDesc("sterad_vault_guarantees", "Guarantees kept for reservations (cards in the vault and host tokens).", nil, nil)
	descStoreBytes  = prometheus.NewDesc("sterad_store_size_bytes", "Size of the store's files: the database (sterad.db) and the key files (keys/).", []string{"file"}, nil)
	descStoreUsed   = prometheus.NewDesc("sterad_store_used_bytes", "The database's data: its high-water mark, free pages included.", nil, nil)
	descStoreFree   = prometheus.NewDesc("sterad_store_free_bytes", "Free pages in the database, reused by new data (sterad store compact returns them).", nil, nil)
	descHolds       = prometheus.NewDesc("sterad_open_holds", "Open pre-authorizations: money held on guests' cards.", nil, nil)
	descHoldsOld    = prometheus.NewDesc("sterad_open_holds_old", "Open pre-authorizations older than reservations.hold_alert.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	ctx := context.Background()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	if m.Client != nil {
		online := 0.0
		if m.Client.Status().Online {
			online = 1
		}
		gauge(descAcqOnline, online)
		s := m.Client.Stats()
		counter(descAcqRequests, float64(s.Requests))
		counter(descAcqTimeouts, float64(s.Timeouts))
		counter(descAcqLate, float64(s.LateResponses))
		counter(descAcqBad, float64(s.Malformed+s.Oversized))
		counter(descAcqReconn, float64(s.Reconnects))
	}
	if m.Gateway != nil {
		for _, t := range m.Gateway.Terminals() {
			for _, st := range []string{sterad.TerminalReady, sterad.TerminalBusy, sterad.TerminalOffline} {
				v := 0.0
				if t.State == st {
					v = 1
				}
				gauge(descTermUp, v, t.ID, st)
			}
		}
		// Counts kept by the gateway: nothing here reads the whole
		// queue or the whole store.
		if qc, err := m.Gateway.QueueCounts(ctx); err == nil {
			gauge(descQueueDepth, float64(qc.Depth))
			gauge(descQueueParked, float64(qc.Parked))
		}
		if alerts, err := m.Gateway.Alerts(ctx); err == nil {
			gauge(descAlerts, float64(len(alerts)))
		}
		if n, err := m.Gateway.VaultCount(ctx); err == nil {
			gauge(descVault, float64(n))
		}
		if hs, err := m.Gateway.Holds(ctx, 0); err == nil {
			old := 0
			for _, h := range hs {
				if h.Old {
					old++
				}
			}
			gauge(descHolds, float64(len(hs)))
			gauge(descHoldsOld, float64(old))
		}
	}
	if m.DB != nil {
		s := m.DB.Stats()
		counter(descCommits, float64(s.Commits))
		counter(descApplies, float64(s.Applies))
		// The store's batch records, not the gateway's Batches (which
		// adds up the open batch's totals).
		if bs, err := m.DB.Batches(ctx); err == nil {
			failed, closing := 0, 0.0
			for _, b := range bs {
				failed += b.Attempts
				switch b.State {
				case sterad.BatchOpen:
					gauge(descBatchAge, max(m.Clock.Now().Sub(b.OpenedAt).Seconds(), 0))
				case sterad.BatchClosing:
					closing = 1
				}
			}
			counter(descCloseFailed, float64(failed))
			gauge(descBatchClosin, closing)
		}
		if sz, err := m.DB.Size(); err == nil {
			gauge(descStoreBytes, float64(sz.DBFile), "database")
			gauge(descStoreBytes, float64(sz.KeyFiles), "keys")
			gauge(descStoreUsed, float64(sz.Used))
			gauge(descStoreFree, float64(sz.Free))
		}
	}
}

// meterStore wraps the store the gateway journals to so that the
// transactions' outcomes are counted; the transactions unfinished at the
// start are counted when they end.
func (m *Main) meterStore(s sterad.Store) sterad.Store {
	return meteredStore{Store: s, d: m.meters()}
}

func (m *Main) meterAcquirer(a sterad.Acquirer) sterad.Acquirer {
	return meteredAcquirer{Acquirer: a, h: m.meters().acquirer}
}

func (m *Main) meterTerminal(t sterad.Terminal) sterad.Terminal {
	return meteredTerminal{Terminal: t, h: m.meters().terminal}
}
