package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/console"
	"github.com/sterad/sterad/simulator/terminal"
)

var consoleShots = flag.String("console.shots", "", "folder for the console browser test's screenshots (default: a folder under $TMPDIR)")

// browser is a headless Debian chromium driven by chromedp; every page
// it visits is saved as a screenshot and its weight and first paint are
// logged.
type browser struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string
	n     int
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed: `make chromium` installs Debian's chromium for the console's browser tests")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	shots := *consoleShots
	if shots == "" {
		shots = filepath.Join(os.TempDir(), "sterad-console-shots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)
	return &browser{t: t, ctx: ctx, base: base, shots: shots}
}

func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		loc, _ := chromedp.Run(b.ctx, chromedp.Location())
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: %v (at %s)", what, err, loc)
	}
}

// shot saves a screenshot of the page and logs its weight (the document
// and its resources, as transferred) and its time to first paint.
func (b *browser) shot(name string) {
	b.t.Helper()
	const js = `JSON.stringify((() => {
	  const nav = performance.getEntriesByType("navigation")[0] || {};
	  const res = performance.getEntriesByType("resource");
	  const bytes = (nav.transferSize || nav.encodedBodySize || 0) + res.reduce((a, e) => a + (e.transferSize || e.encodedBodySize || 0), 0);
	  const fp = performance.getEntriesByName("first-paint")[0];
	  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
	  return {kb: bytes / 1024, fp: fp ? fp.startTime : -1, fcp: fcp ? fcp.startTime : -1, url: location.pathname};
	})())`
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	perf, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.t.Errorf("performance of %s: %v", name, err)
	}
	b.n++
	file := filepath.Join(b.shots, strings.ReplaceAll(b.t.Name(), "/", "_")+"-"+twoDigits(b.n)+"-"+name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Error(err)
	}
	var p struct {
		KB      float64 `json:"kb"`
		FP, FCP float64
		URL     string `json:"url"`
	}
	json.Unmarshal([]byte(perf), &p)
	b.t.Logf("page %-22s %-34s %6.1f KB  first paint %5.0f ms  first contentful paint %5.0f ms  %s", name, p.URL, p.KB, p.FP, p.FCP, filepath.Base(file))
}

func twoDigits(n int) string { return string([]byte{byte('0' + n/10%10), byte('0' + n%10)}) }

// submit clicks sel and waits for the next page to have loaded.
func submit(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := chromedp.Evaluate[any](`document.body.dataset.left = "1"`)(ctx, t); err != nil {
			return err
		}
		if _, err := chromedp.Click(chromedp.CSS(sel))(ctx, t); err != nil {
			return err
		}
		// Poll with a deadline: while the page changes, evaluations fail.
		deadline := time.Now().Add(20 * time.Second)
		for {
			done, err := chromedp.Evaluate[bool](`!!document.body && !document.body.dataset.left && document.readyState === "complete"`)(ctx, t)
			if err == nil && done {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the page after clicking %s did not load (%v)", sel, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
}

func (b *browser) login(user, password string) {
	b.t.Helper()
	b.run("log in as "+user,
		chromedp.Navigate(b.base+"/login"),
		chromedp.WaitVisible(chromedp.CSS(`#user`)),
		chromedp.SetValue(chromedp.CSS(`#user`), user),
		chromedp.SetValue(chromedp.CSS(`#password`), password),
		submit(`#login`),
	)
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	b.run("wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

const browserPassword = "correct horse battery"

// TestConsoleInABrowser drives the console of a simulated sterad in
// Debian's chromium: the language switch, the lock after 5 wrong
// passwords, a sale approved and one declined followed live, a form
// without its CSRF token refused, the transactions and the slip, a batch
// close followed live and the payout chart.
func TestConsoleInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Skip("chromium is not installed: `make chromium` installs Debian's chromium for the console's browser tests")
	}
	d := startDaemon(t, withRules)
	ctx := context.Background()
	for _, u := range []struct{ name, role string }{{"clerk1", sterad.RoleClerk}, {"night", sterad.RoleAuditor}, {"victim", sterad.RoleClerk},
		{"resv", sterad.RoleReservations}, {"boss", sterad.RoleAdmin}} {
		if err := console.AddUser(ctx, d.m.DB, u.name, u.role, browserPassword, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t, "http://"+d.m.APIAddr+"/console")

	// Japanese by default, English on request.
	b.run("login page", chromedp.Navigate(b.base+"/login"), chromedp.WaitVisible(chromedp.CSS(`#login`)))
	if got := b.text(`#login`); got != "ログイン" {
		t.Errorf("login button %q, want ログイン", got)
	}
	b.shot("login-ja")
	b.run("switch to English", submit(`a[lang="en"]`), chromedp.WaitVisible(chromedp.CSS(`#login`)))
	if got := b.text(`#login`); got != "Log in" {
		t.Errorf("login button in English %q", got)
	}
	b.shot("login-en")
	b.run("back to Japanese", submit(`a[lang="ja"]`), chromedp.WaitVisible(chromedp.CSS(`#login`)))

	// Five wrong passwords lock the account, even against the right one.
	for i := 0; i < 5; i++ {
		b.login("victim", "wrong password")
	}
	if msg := b.text(`#login-error`); !strings.Contains(msg, "ロック") {
		t.Errorf("after 5 wrong passwords: %q", msg)
	}
	b.login("victim", browserPassword)
	if msg := b.text(`#login-error`); !strings.Contains(msg, "ロック") {
		t.Errorf("right password while locked: %q", msg)
	}
	b.shot("login-locked")

	// A sale approved at the simulated terminal, followed live.
	b.login("clerk1", browserPassword)
	b.run("desk", chromedp.WaitVisible(chromedp.CSS(`#pay-form`)), chromedp.WaitVisible(chromedp.CSS(`tr[data-terminal="FRONT001"].term-ready`)))
	b.shot("desk")
	sale := func(amount, want string) {
		t.Helper()
		b.run("sale "+amount,
			chromedp.Navigate(b.base+"/desk"),
			chromedp.WaitVisible(chromedp.CSS(`#amount`)),
			chromedp.SetValue(chromedp.CSS(`#op`), "sale"),
			chromedp.SetValue(chromedp.CSS(`#terminal`), "FRONT001"),
			chromedp.SetValue(chromedp.CSS(`#amount`), amount),
			chromedp.SetValue(chromedp.CSS(`#reference`), "RSV-"+amount),
			submit(`#start`),
			chromedp.WaitVisible(chromedp.CSS(`#live .live-panel`)),
		)
		b.shot("live-" + want + "-start")
		b.run("outcome "+want, chromedp.WaitVisible(chromedp.CSS(`#live[data-live-ended] .live-panel[data-status="`+want+`"]`)))
		b.shot("live-" + want)
	}
	sale("12800", "approved")
	if panel := b.text(`#live`); !strings.Contains(panel, "******") || !strings.Contains(panel, "承認") {
		t.Errorf("the approved sale's panel does not show it approved with a masked card:\n%s", panel)
	}
	d.card("FRONT001", terminal.Card{PAN: "4000000000000002", Entry: "chip"})
	sale("8000", "declined")

	// A form without its CSRF token is refused.
	b.run("pay form without its CSRF token",
		chromedp.Navigate(b.base+"/desk"),
		chromedp.WaitVisible(chromedp.CSS(`#pay-form`)),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[any](`document.querySelector('#pay-form input[name=csrf]').remove()`)(ctx, t)
			return err
		}),
		chromedp.SetValue(chromedp.CSS(`#amount`), "100"),
		submit(`#start`),
		chromedp.WaitVisible(chromedp.CSS(`#error`)),
	)
	if msg := b.text(`#error`); !strings.Contains(msg, "CSRF") {
		t.Errorf("without CSRF token: %q", msg)
	}
	b.shot("csrf-refused")
	status, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`fetch("/console/desk/pay", {method: "POST", headers: {"Content-Type": "application/x-www-form-urlencoded"},
		body: "op=sale&terminal=FRONT001&amount=100&idem=0123456789abcdef0123"}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || status != 403 {
		t.Errorf("POST without CSRF token: %d, %v; want 403", status, err)
	}

	// Today's transactions and a slip.
	b.run("transactions", chromedp.Navigate(b.base+"/txns"), chromedp.WaitVisible(chromedp.CSS(`#rows tr[data-txn]`)))
	b.shot("transactions")
	b.run("search", chromedp.SendKeys(chromedp.CSS(`#q`), "RSV-8000"),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Poll[bool](`document.querySelectorAll("#rows tr[data-txn]").length === 1`, chromedp.WithPollingTimeout(10*time.Second))(ctx, t)
			return err
		}))
	b.shot("transactions-search")
	b.run("slip", submit(`#rows tr[data-txn] a`), chromedp.WaitVisible(chromedp.CSS(`#slip`)))
	b.shot("slip")
	// A pre-authorization at check-in, then its check-out with a travel
	// voucher: the voucher pays ¥5,000 of the room plan, the card the rest.
	b.run("pre-authorization",
		chromedp.Navigate(b.base+"/desk"),
		chromedp.WaitVisible(chromedp.CSS(`#amount`)),
		chromedp.SetValue(chromedp.CSS(`#op`), "preauth"),
		chromedp.SetValue(chromedp.CSS(`#terminal`), "FRONT001"),
		chromedp.SetValue(chromedp.CSS(`#amount`), "30000"),
		chromedp.SetValue(chromedp.CSS(`#reference`), "RSV-CO"),
		submit(`#start`),
		chromedp.WaitVisible(chromedp.CSS(`#live[data-live-ended] .live-panel[data-status="approved"]`)),
		submit(`#to-slip`),
		chromedp.WaitVisible(chromedp.CSS(`#incremental`)),
	)
	b.shot("slip-hold")
	b.run("check-out form", submit(`#checkout`), chromedp.WaitVisible(chromedp.CSS(`#checkout-form`)))
	b.run("check-out",
		chromedp.SetValue(chromedp.CSS(`#co-guests`), "2"),
		chromedp.SetValue(chromedp.CSS(`#co-roomplan`), "20000"),
		chromedp.SetValue(chromedp.CSS(`input[name=vp1]`), "OITA2016"),
		chromedp.SetValue(chromedp.CSS(`input[name=vn1]`), "1234567890"),
	)
	b.shot("checkout-form")
	b.run("check-out review", submit(`#co-next`), chromedp.WaitVisible(chromedp.CSS(`#co-total`)))
	if total := b.text(`#co-total`); total != "¥20,000" {
		t.Errorf("check-out total %q, want ¥20,000", total)
	}
	b.shot("checkout-confirm")
	b.run("check-out confirmed", submit(`#confirm`), chromedp.WaitVisible(chromedp.CSS(`#co-result`)))
	if got := b.text(`#co-vouchers-applied`) + " " + b.text(`#co-card-amount`); got != "¥5,000 ¥15,000" {
		t.Errorf("check-out: vouchers and card %q, want ¥5,000 ¥15,000", got)
	}
	b.shot("checkout-done")
	b.run("completion", submit(`#co-txn`), chromedp.WaitVisible(chromedp.CSS(`#live[data-live-ended] .live-panel[data-status="approved"]`)))
	b.shot("checkout-completion")
	b.run("log out", submit(`#logout`), chromedp.WaitVisible(chromedp.CSS(`#login`)))

	// The reservation desk: a card check at the terminal for a guaranteed
	// reservation that arrived yesterday, then its no-show, charged after
	// a confirmation that shows the amount computed from the policy.
	loc := d.m.Config.Location()
	yesterday, today := time.Now().In(loc).AddDate(0, 0, -1).Format(time.DateOnly), time.Now().In(loc).Format(time.DateOnly)
	b.login("resv", browserPassword)
	b.run("reservations", chromedp.WaitVisible(chromedp.CSS(`#cardcheck-form`)))
	b.shot("reservations")
	b.run("card check",
		chromedp.SetValue(chromedp.CSS(`#cc-terminal`), "FRONT001"),
		chromedp.SetValue(chromedp.CSS(`#cc-reference`), "RSV-BROWSER"),
		chromedp.SetValue(chromedp.CSS(`#cc-checkin`), yesterday),
		chromedp.SetValue(chromedp.CSS(`#cc-checkout`), today),
		chromedp.SetValue(chromedp.CSS(`#cc-firstnight`), "18000"),
		submit(`#cardcheck`),
		chromedp.WaitVisible(chromedp.CSS(`#live .live-panel`)),
	)
	b.shot("cardcheck-start")
	b.run("card check approved", chromedp.WaitVisible(chromedp.CSS(`#live[data-live-ended] .live-panel[data-status="approved"]`)))
	b.shot("cardcheck-approved")
	b.run("reservation", chromedp.Navigate(b.base+"/reservations/r/RSV-BROWSER"), chromedp.WaitVisible(chromedp.CSS(`#noshow`)))
	if st := b.text(`#res-state`); st != "保証済み" {
		t.Errorf("reservation state %q, want 保証済み", st)
	}
	if fee := b.text(`#noshow-fee`); !strings.Contains(fee, "¥18,000") {
		t.Errorf("no-show fee %q, want ¥18,000 (100 %% of the first night)", fee)
	}
	if card := b.text(`#res-card`); !strings.Contains(card, "*") {
		t.Errorf("the reservation's card is not shown masked: %q", card)
	}
	b.shot("reservation")
	b.run("no-show", submit(`#noshow`), chromedp.WaitVisible(chromedp.CSS(`#confirm-amount`)))
	if amount := b.text(`#confirm-amount`); amount != "¥18,000" {
		t.Errorf("the no-show's confirmation shows %q, want ¥18,000", amount)
	}
	if got := kinds(ledgerOf(d, "RSV-BROWSER")); strings.Contains(got, "noshow") {
		t.Errorf("the no-show reached the host before its confirmation: %s", got)
	}
	b.shot("noshow-confirm")
	b.run("no-show confirmed", submit(`#confirm`), chromedp.WaitVisible(chromedp.CSS(`#live .live-panel`)))
	b.run("no-show approved", chromedp.WaitVisible(chromedp.CSS(`#live[data-live-ended] .live-panel[data-status="approved"]`)))
	if panel := b.text(`#live`); !strings.Contains(panel, "¥18,000") {
		t.Errorf("the no-show's panel:\n%s", panel)
	}
	b.shot("noshow-approved")
	if got := kinds(ledgerOf(d, "RSV-BROWSER")); !strings.Contains(got, "noshow:18000") {
		t.Errorf("the host's ledger for RSV-BROWSER: %s", got)
	}
	b.run("reservations after", chromedp.Navigate(b.base+"/reservations/r/RSV-BROWSER"), chromedp.WaitVisible(chromedp.CSS(`#res-state`)))
	b.shot("reservation-charged")
	b.run("log out", submit(`#logout`), chromedp.WaitVisible(chromedp.CSS(`#login`)))

	// The night audit: the batch, its close followed live, the payouts.
	b.login("night", browserPassword)
	b.run("night audit", chromedp.WaitVisible(chromedp.CSS(`#by-terminal`)))
	b.shot("audit")
	b.run("close", submit(`#close`), chromedp.WaitVisible(chromedp.CSS(`#live .live-panel`)))
	b.shot("close-progress")
	b.run("closed", chromedp.WaitVisible(chromedp.CSS(`#live[data-live-ended] .live-panel[data-state="closed"]`)))
	b.shot("close-done")
	b.run("history", chromedp.Navigate(b.base+"/audit/batches"), chromedp.WaitVisible(chromedp.CSS(`tr[data-batch]`)))
	b.shot("batches")
	b.run("alerts", chromedp.Navigate(b.base+"/audit/alerts"), chromedp.WaitVisible(chromedp.CSS(`main h1`)))
	b.shot("alerts")
	b.run("settlement", chromedp.Navigate(b.base+"/audit/settlement?from="+today+"&to="+today), chromedp.WaitVisible(chromedp.CSS(`#payout-chart`)))
	bars, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#payout-chart g.bar rect").length`))
	if err != nil {
		t.Fatal(err)
	}
	if bars == 0 {
		t.Error("the payout chart has no bar after the close")
	}
	b.shot("settlement")
	b.run("voucher claim", chromedp.Navigate(b.base+"/audit/vouchers"), chromedp.WaitVisible(chromedp.CSS(`#claims tr[data-program="OITA2016"]`)))
	if row := b.text(`#claims tr[data-program="OITA2016"]`); !strings.Contains(row, "¥5,000") {
		t.Errorf("the voucher claim lacks the check-out's voucher: %q", row)
	}
	b.shot("vouchers")
	b.run("audit log", chromedp.Navigate(b.base+"/admin/audit-log"), chromedp.WaitVisible(chromedp.CSS(`#audit-log`)))
	if log := b.text(`#audit-log`); !strings.Contains(log, "txn.sale") || !strings.Contains(log, "batch.close") || !strings.Contains(log, "login.lock") {
		t.Errorf("audit log lacks the sale, the close or the lock:\n%s", log)
	}
	b.shot("audit-log")
	b.run("log out", submit(`#logout`), chromedp.WaitVisible(chromedp.CSS(`#login`)))

	// The administrator adds a user in the browser.
	b.login("boss", browserPassword)
	b.run("admin", chromedp.Navigate(b.base+"/admin"), chromedp.WaitVisible(chromedp.CSS(`#adduser-form`)))
	b.run("add a user",
		chromedp.SetValue(chromedp.CSS(`#new-name`), "newclerk"),
		chromedp.SetValue(chromedp.CSS(`#new-role`), "clerk"),
		chromedp.SetValue(chromedp.CSS(`#new-password`), browserPassword),
		submit(`#adduser`),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-user="newclerk"]`)),
	)
	b.shot("admin-users")
	// and unlocks the account locked above.
	b.run("unlock", submit(`tr[data-user="victim"] button.unlock`), chromedp.WaitVisible(chromedp.CSS(`#done`)))
	if st := b.text(`tr[data-user="victim"] .user-state`); st != "有効" {
		t.Errorf("victim after the unlock: %q", st)
	}
	b.shot("admin-unlocked")
	b.run("log out", submit(`#logout`), chromedp.WaitVisible(chromedp.CSS(`#login`)))
	b.login("victim", browserPassword)
	b.run("victim logged in", chromedp.WaitVisible(chromedp.CSS(`#pay-form`)))
}
