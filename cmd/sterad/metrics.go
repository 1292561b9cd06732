package main

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sterad/sterad"
)

// metricsHandler serves Prometheus metrics read at scrape time from the
// parts of the daemon: the acquirer link, the terminals, the queue, the
// store.
func (m *Main) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &collector{m: m})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

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
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
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
		if items, err := m.Gateway.Queue(context.Background()); err == nil {
			parked := 0
			for _, it := range items {
				if it.Parked {
					parked++
				}
			}
			gauge(descQueueDepth, float64(len(items)))
			gauge(descQueueParked, float64(parked))
		}
		if alerts, err := m.Gateway.Alerts(context.Background()); err == nil {
			gauge(descAlerts, float64(len(alerts)))
		}
	}
	if m.DB != nil {
		s := m.DB.Stats()
		counter(descCommits, float64(s.Commits))
		counter(descApplies, float64(s.Applies))
	}
}
