package main

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/sterad/sterad/api"
)

// In serve --simulate the daemon's API serves the simulators' controls
// under /v1/sim/, and the settlement report, with its token.
func TestSimulatorControlsAndReportOnTheAPI(t *testing.T) {
	d := startDaemon(t)
	ctx := context.Background()
	var delay struct {
		DelayMS int `json:"delay_ms"`
	}
	for _, tt := range []struct {
		method, path string
		body, out    any
		status       int
		code         string
	}{
		{"POST", "/v1/sim/acquirer/delay", map[string]int{"ms": 5}, nil, 200, ""},
		{"GET", "/v1/sim/acquirer/controls", nil, &delay, 200, ""},
		{"GET", "/v1/sim/terminals/FRONT001/state", nil, &map[string]any{}, 200, ""},
		{"GET", "/v1/sim/terminals/HAND0001/slips", nil, &map[string]any{}, 200, ""},
		{"GET", "/v1/sim/terminals/NOPE0001/state", nil, nil, 404, "unknown_terminal"},
		{"GET", "/v1/sim/terminals/FRONT001/nothing", nil, nil, 404, "not_found"},
		{"GET", "/v1/reports/settlement?from=2026-11-01&to=2026-11-30", nil, &map[string]any{}, 200, ""},
		{"GET", "/v1/reports/settlement?from=2026-11-30&to=2026-11-01", nil, nil, 400, "invalid_range"},
	} {
		code, err := d.c.Do(ctx, tt.method, tt.path, nil, tt.body, tt.out)
		var ae *api.Error
		switch {
		case tt.status == 200 && (err != nil || code != 200):
			t.Errorf("%s %s: %d %v", tt.method, tt.path, code, err)
		case tt.status != 200 && (!errors.As(err, &ae) || ae.Status != tt.status || ae.Code != tt.code):
			t.Errorf("%s %s: %d %v, want %d %s", tt.method, tt.path, code, err, tt.status, tt.code)
		}
		if m, ok := tt.out.(*map[string]any); ok && tt.status == 200 && len(*m) == 0 {
			t.Errorf("%s %s: empty answer", tt.method, tt.path)
		}
	}
	if delay.DelayMS != 5 {
		t.Errorf("the acquirer's delay is %d ms, want 5", delay.DelayMS)
	}
	var rep map[string]any
	if _, err := d.c.Do(ctx, "GET", "/v1/reports/settlement?from=2026-11-01&to=2026-11-30", nil, nil, &rep); err != nil ||
		rep["from"] != "2026-11-01" || rep["to"] != "2026-11-30" || rep["currency"] == nil {
		t.Errorf("report %v %v", err, rep)
	}
	// Without the token, nothing.
	anon := api.NewClient(d.m.APIAddr, "")
	anon.HTTP = &http.Client{Timeout: 10 * time.Second}
	if _, err := anon.Do(ctx, "GET", "/v1/sim/acquirer/controls", nil, nil, nil); !isStatus(err, 401) {
		t.Errorf("anonymous: %v", err)
	}
}

func isStatus(err error, status int) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Status == status
}
