package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/simulator/terminal"
)

// run15 runs sterad with args as a shell would, and returns its exit code,
// stdout and stderr.
func run15(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errw bytes.Buffer
	code := Execute(context.Background(), args, strings.NewReader(""), &out, &errw)
	return code, out.String(), errw.String()
}

// cli15 runs a client command against the test daemon with --api-token.
func (d *testDaemon) cli15(args ...string) (int, string, string) {
	d.t.Helper()
	return run15(d.t, append([]string{"--api", d.m.APIAddr, "--api-token", d.m.Token}, args...)...)
}

// The exit codes of docs/cli.md, as a script sees them.
func TestCLIExitCodes(t *testing.T) {
	d := startDaemon(t, clearMode)
	exp := expiry()
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string // a part of stdout
		stderr   string // a part of stderr
		jsonCode string // with --json: the error's code, or "" for a transaction
	}{
		{"approved", []string{"sale", "--amount", "8000", "--pan", "4111111111111111", "--expiry", exp}, ExitOK, "APPROVED", "", ""},
		{"declined", []string{"sale", "--amount", "8000", "--pan", "4000000000000002", "--expiry", exp}, ExitDeclined, "DECLINED", "", ""},
		{"outcome unknown, reversed", []string{"sale", "--amount", "7000", "--pan", "4000000000000226", "--expiry", exp}, ExitPending, "\nnote: ", "", ""},
		{"refused by the API", []string{"sale", "--pan", "4111111111111111", "--expiry", exp}, ExitBadInput, "", "amount", ""},
		{"unknown flag", []string{"sale", "--amout", "1"}, ExitBadInput, "", "unknown flag", ""},
		{"extra argument", []string{"status", "now"}, ExitBadInput, "", "unknown command", ""},
		{"unknown transaction", []string{"txn", "show", "01NOSUCHTXN"}, ExitBadInput, "", "", ""},
		{"declined, JSON", []string{"--json", "sale", "--amount", "8000", "--pan", "4000000000000002", "--expiry", exp}, ExitDeclined, `"status": "declined"`, "", ""},
		{"refused, JSON", []string{"--json", "sale", "--pan", "4111111111111111", "--expiry", exp}, ExitBadInput, "", "", "invalid_amount"},
		{"usage, JSON", []string{"--json", "txn", "list", "--limit", "0"}, ExitBadInput, "", "", "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := d.cli15(tt.args...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			if tt.jsonCode != "" {
				var body api.ErrorBody
				if err := json.Unmarshal([]byte(out), &body); err != nil || body.Error.Code != tt.jsonCode || body.Error.Message == "" {
					t.Fatalf("JSON error: %v\n%s", err, out)
				}
				if errOut != "" {
					t.Errorf("stderr under --json: %s", errOut)
				}
			}
		})
	}

	// The daemon unreachable: 5, and under --json the code unavailable.
	code, out, _ := run15(t, "--api", "127.0.0.1:1", "--api-token", "x", "--json", "status")
	var body api.ErrorBody
	if code != ExitUnavailable || json.Unmarshal([]byte(out), &body) != nil || body.Error.Code != "unavailable" {
		t.Fatalf("unreachable: exit %d\n%s", code, out)
	}

	// Stood in while the acquirer is down: approved offline, 0 with a note.
	if err := d.m.SimHost.SetOutage(true); err != nil {
		t.Fatal(err)
	}
	d.waitFor("acquirer offline", func() bool {
		st, err := d.c.Status(context.Background())
		return err == nil && !st.Acquirer.Online
	})
	d.card("FRONT001", terminal.Card{PAN: "4111111111111111"})
	code, out, errOut := d.cli15("sale", "--amount", "6000", "--terminal", "FRONT001")
	if code != ExitOK || !strings.Contains(out, "STOOD_IN") || !strings.Contains(out, "approved offline") {
		t.Fatalf("stood in: exit %d\n%s%s", code, out, errOut)
	}
}

// Every status a transaction can end a command with has its exit code.
func TestCLIExitCodeOfEveryStatus(t *testing.T) {
	want := map[sterad.Status]int{
		sterad.StatusApproved: ExitOK, sterad.StatusStoodIn: ExitOK, sterad.StatusVoided: ExitOK,
		sterad.StatusDeclined: ExitDeclined, sterad.StatusCancelled: ExitDeclined,
		sterad.StatusPending: ExitPending, sterad.StatusUnknown: ExitPending, sterad.StatusReversed: ExitPending,
	}
	for status, code := range want {
		if got := exitForStatus(string(status)); got != code {
			t.Errorf("%s: exit %d, want %d", status, got, code)
		}
		if got := exitCode(&api.Error{Status: 409, Code: "x", Transaction: &api.Transaction{Status: string(status)}}); got != code {
			t.Errorf("%s in an API error: exit %d, want %d", status, got, code)
		}
	}
	for status, code := range map[int]int{400: ExitBadInput, 404: ExitBadInput, 409: ExitBadInput, 503: ExitUnavailable, 500: ExitFailure, 401: ExitFailure} {
		if got := exitCode(&api.Error{Status: status, Code: "x"}); got != code {
			t.Errorf("HTTP %d: exit %d, want %d", status, got, code)
		}
	}
}

// txn list: newest first, 20 unless told, --limit keeps the newest,
// --all every one, --oldest-first the other way round.
func TestCLITxnListNewestFirst(t *testing.T) {
	d := startDaemon(t, clearMode)
	var ids []string // oldest first
	for i := range 23 {
		ref := ""
		if i >= 20 {
			ref = "FOLIO-9" // the last three: found by the reference index
		}
		tx := d.post(api.TransactionRequest{Op: "sale", Amount: api.FlexAmount(fmt.Sprint(1000 + i)), Card: keyed("4111111111111111"), Reference: ref})
		ids = append(ids, tx.ID)
	}
	list := func(args ...string) []string {
		t.Helper()
		code, out, errOut := d.cli15(append([]string{"--json", "txn", "list"}, args...)...)
		if code != 0 {
			t.Fatalf("txn list %v: exit %d %s", args, code, errOut)
		}
		var txns []*api.Transaction
		if err := json.Unmarshal([]byte(out), &txns); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tx := range txns {
			got = append(got, tx.ID)
		}
		return got
	}
	reversed := func(s []string) []string {
		out := make([]string, len(s))
		for i := range s {
			out[i] = s[len(s)-1-i]
		}
		return out
	}
	newest := reversed(ids)
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{nil, newest[:20]},
		{[]string{"--limit", "3"}, newest[:3]},
		{[]string{"--all"}, newest},
		{[]string{"--oldest-first", "--limit", "2"}, ids[:2]},
		{[]string{"--date", today().String(), "--limit", "1"}, newest[:1]},
		{[]string{"--date", today().AddDays(-1).String()}, nil},
		{[]string{"--ref", "FOLIO-9", "--limit", "2"}, newest[:2]},
		{[]string{"--ref", "FOLIO-9", "--oldest-first"}, ids[20:]},
	} {
		if got := list(tt.args...); strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("txn list %v:\n got %v\nwant %v", tt.args, got, tt.want)
		}
	}
	// For a person: the zone in the header, the newest on the first line.
	code, out, _ := d.cli15("txn", "list", "--limit", "3")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "CREATED (JST)") || !strings.Contains(lines[1], newest[0]) {
		t.Fatalf("txn list --limit 3:\n%s", out)
	}
}

// Times are shown in the merchant's zone, named, and --date means a day
// in that zone: a transaction is found under the date it is shown with.
func TestCLITimesInTheMerchantsZone(t *testing.T) {
	const zone = "America/New_York"
	t.Cleanup(func() { cliZone.Store(nil) }) // the other tests show Japan time
	d := startDaemon(t, clearMode, func(m *Main) { m.Config.Settlement.Timezone = zone })
	cfg := writeFile(t, "settlement: {timezone: "+zone+"}\n")
	tx := d.post(api.TransactionRequest{Op: "sale", Amount: "5000", Card: keyed("4111111111111111")})
	code, out, errOut := d.cli15("--config", cfg, "txn", "show", tx.ID)
	loc, _ := time.LoadLocation(zone)
	local := tx.CreatedAt.In(loc)
	want := local.Format("2006-01-02 15:04:05 MST") // EST or EDT
	if code != 0 || !strings.Contains(strings.Join(strings.Fields(out), " "), "created "+want) {
		t.Fatalf("txn show: want created %s\n%s%s", want, out, errOut)
	}
	code, out, _ = d.cli15("--config", cfg, "--json", "txn", "list", "--date", local.Format(time.DateOnly))
	if code != 0 || !strings.Contains(out, tx.ID) {
		t.Fatalf("txn list --date %s (the day shown): %s", local.Format(time.DateOnly), out)
	}
	// The API keeps RFC 3339 with its offset.
	if !strings.Contains(out, `"created_at": "`+tx.CreatedAt.Format("2006-01-02T")) {
		t.Errorf("JSON created_at is not RFC 3339: %s", out)
	}
}

func TestCLIReportSettlementDefaultsToThisMonth(t *testing.T) {
	now := sterad.Date{Year: 2026, Month: time.February, Day: 17}
	for _, tt := range []struct{ from, to, wantFrom, wantTo string }{
		{"", "", "2026-02-01", "2026-02-17"},
		{"2026-01-10", "", "2026-01-10", "2026-01-31"},
		{"", "2025-12-05", "2025-12-01", "2025-12-05"},
		{"2026-01-01", "2026-01-02", "2026-01-01", "2026-01-02"},
	} {
		f, to, err := reportRange(tt.from, tt.to, now)
		if err != nil || f != tt.wantFrom || to != tt.wantTo {
			t.Errorf("from %q to %q: %s – %s, %v", tt.from, tt.to, f, to, err)
		}
	}
	if _, _, err := reportRange("2026-13-01", "", now); exitCode(err) != ExitBadInput {
		t.Errorf("a bad --from: %v", err)
	}
	d := startDaemon(t, clearMode)
	code, out, errOut := d.cli15("report", "settlement")
	first := sterad.Date{Year: today().Year, Month: today().Month, Day: 1}
	if code != 0 || !strings.Contains(out, "settlement "+first.String()+" – "+today().String()) {
		t.Fatalf("report settlement: exit %d\n%s%s", code, out, errOut)
	}
}

// batch close --no-wait returns at once with the batch number; the daemon
// closes it.
func TestBatchCloseNoWait(t *testing.T) {
	d := startDaemon(t, clearMode)
	d.post(api.TransactionRequest{Op: "sale", Amount: "12000", Card: keyed("4111111111111111")})
	code, out, errOut := d.cli15("--json", "batch", "close", "--no-wait")
	var ans struct{ Batch int }
	if code != 0 || json.Unmarshal([]byte(out), &ans) != nil || ans.Batch != 1 {
		t.Fatalf("batch close --no-wait: exit %d\n%s%s", code, out, errOut)
	}
	d.waitFor("batch 1 closed", func() bool {
		b, err := d.c.Batch(context.Background(), 1)
		return err == nil && b.State == sterad.BatchClosed
	})
	if code, out, _ := d.cli15("batch", "close", "--no-wait"); code != 0 || !strings.Contains(out, "closing batch 000002") {
		t.Fatalf("batch close --no-wait: %d %s", code, out)
	}
}

// The API token is --api-token everywhere; on noshow, deposit and
// cardcheck --token is the card token, and elsewhere the old global
// --token still means the API token.
func TestCLIAPITokenFlag(t *testing.T) {
	for _, tt := range []struct {
		args                []string
		apiToken, cardToken string
	}{
		{[]string{"--api-token", "A", "noshow", "--token", "C"}, "A", "C"},
		{[]string{"noshow", "--api-token", "A", "--token", "C"}, "A", "C"},
		{[]string{"deposit", "--token", "C"}, "", "C"},
		{[]string{"--token", "A", "status"}, "A", ""},
		{[]string{"--api-token", "A", "status"}, "A", ""},
	} {
		root := NewRootCommand()
		cmd, rest, err := root.Find(tt.args)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		api, _ := cmd.Flags().GetString("api-token")
		card := ""
		if f := cmd.LocalFlags().Lookup("token"); f != nil {
			card = f.Value.String()
		} else if tok, _ := cmd.Flags().GetString("token"); tok != api {
			t.Errorf("%v: the hidden --token %q is not the API token %q", tt.args, tok, api)
		}
		if api != tt.apiToken || card != tt.cardToken {
			t.Errorf("%v: API token %q, card token %q", tt.args, api, card)
		}
	}
}
