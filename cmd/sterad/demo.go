package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/settlement"
	"github.com/sterad/sterad/simulator/terminal"
)

func newDemoCommand(g *globalOptions) *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a scripted front-desk day against the embedded simulators",
		Long: `Start sterad with its simulators in a temporary directory and run a front-desk
day through the HTTP API: check-in, extension, check-out, restaurant charges,
refunds, declines, a customer who cancels, a telephone order and its void, an
acquirer that does not answer, and a retried request. It prints what happened
and checks that sterad's books and the test acquirer's ledger agree.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := os.MkdirTemp("", "sterad-demo-")
			if err != nil {
				return err
			}
			if !keep {
				defer os.RemoveAll(dir)
				defer os.Remove(simulateKEKPath(dir))
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), dir)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the demo's data directory")
	return cmd
}

// demo is one scripted day and its expectations.
type demo struct {
	ctx    context.Context
	out    io.Writer
	m      *Main
	c      *api.Client
	failed []string
}

func runDemo(ctx context.Context, out io.Writer, dir string) error {
	cfg := DefaultConfig()
	cfg.DataDir = dir
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Acquirer.Address = "127.0.0.1:0"
	cfg.Acquirer.Timeout = Duration(2 * time.Second)
	m := &Main{Config: cfg, Simulate: true, SimPresentDelay: 300 * time.Millisecond, NoNightlyClose: true}
	m.ClientTuning = func(o *protocol.ClientOptions) { o.BackoffMin = 200 * time.Millisecond }
	start := time.Now()
	if err := m.Run(ctx); err != nil {
		return err
	}
	defer m.Close()
	d := &demo{ctx: ctx, out: out, m: m, c: api.NewClient(m.APIAddr, m.Token)}
	if err := d.waitReady(); err != nil {
		return err
	}
	fmt.Fprintf(out, "sterad demo: daemon on %s, test acquirer on %s, terminals FRONT001 (fixed) and HAND0001 (handheld) on ptys\n",
		m.APIAddr, m.Config.Acquirer.Address)
	d.run()
	fmt.Fprintf(out, "\nThe day took %s.\n", time.Since(start).Round(time.Millisecond))
	if len(d.failed) > 0 {
		return fmt.Errorf("demo: %d expectation(s) not met:\n  %s", len(d.failed), strings.Join(d.failed, "\n  "))
	}
	fmt.Fprintln(out, "Everything balanced.")
	return nil
}

func (d *demo) waitReady() error {
	ctx, cancel := context.WithTimeout(d.ctx, 15*time.Second)
	defer cancel()
	for {
		st, err := d.c.Status(ctx)
		if err == nil && st.Acquirer.Online {
			ready := 0
			for _, t := range st.Terminals {
				if t.State == sterad.TerminalReady {
					ready++
				}
			}
			if ready == len(st.Terminals) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("demo: the simulators did not come up within 15s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (d *demo) section(title string) { fmt.Fprintf(d.out, "\n== %s\n", title) }

func (d *demo) expect(ok bool, format string, args ...any) {
	if !ok {
		d.failed = append(d.failed, fmt.Sprintf(format, args...))
		fmt.Fprintf(d.out, "   !! unexpected: %s\n", fmt.Sprintf(format, args...))
	}
}

// card queues what the next customer presents at a simulated terminal.
func (d *demo) card(term string, c terminal.Card) {
	if err := d.m.SimTerminals[term].PushCard(c); err != nil {
		d.expect(false, "queue a card: %v", err)
	}
}

// do submits a request and prints its outcome.
func (d *demo) do(what string, r api.TransactionRequest, o api.CreateOptions) (*api.Transaction, error) {
	t0 := time.Now()
	t, code, err := d.c.CreateTransaction(d.ctx, r, o)
	took := time.Since(t0).Round(time.Millisecond)
	if err != nil {
		fmt.Fprintf(d.out, "   %-46s → refused: %s\n", what, err)
		return nil, err
	}
	line := fmt.Sprintf("   %-46s → %s", what, strings.ToUpper(t.Status))
	if t.MaskedPAN != "" {
		line += fmt.Sprintf("  %s %s", t.Brand, t.MaskedPAN)
	}
	if t.AuthCode != "" && t.Status == "approved" {
		line += "  auth " + t.AuthCode
	}
	if t.Reason != "" {
		line += "  (" + t.Reason + ")"
	}
	if code == 200 {
		line += "  [replayed]"
	}
	fmt.Fprintf(d.out, "%s  %s\n", line, took)
	return t, nil
}

func (d *demo) mustDo(what string, r api.TransactionRequest, want string) *api.Transaction {
	t, err := d.do(what, r, api.CreateOptions{})
	if err != nil {
		d.expect(false, "%s: %v", what, err)
		return &api.Transaction{}
	}
	d.expect(t.Status == want, "%s: status %s, want %s", what, t.Status, want)
	return t
}

func (d *demo) run() {
	today := time.Now().In(d.m.Config.Location())
	in, out := today.Format(time.DateOnly), today.AddDate(0, 0, 2).Format(time.DateOnly)
	visa := terminal.Card{PAN: "4111111111111111", Entry: "chip"}
	mc := terminal.Card{PAN: "5555555555554444", Entry: "ctls"}

	d.section("Check-in at the front desk (FRONT001)")
	d.card("FRONT001", visa)
	pre := d.mustDo("pre-authorization ¥30,000, RSV-0042, 2 nights", api.TransactionRequest{Op: "preauth", Terminal: "FRONT001",
		Amount: "30000", Reference: "RSV-0042", Stay: &api.StayInput{CheckIn: in, CheckOut: out}}, "approved")
	d.mustDo("the guest stays a night longer: +¥15,000", api.TransactionRequest{Op: "incremental", Original: pre.ID, Amount: "15000"}, "approved")

	d.section("Check-out")
	_, err := d.do("final bill ¥60,000 (over ¥45,000 × 1.15)", api.TransactionRequest{Op: "completion", Original: pre.ID, Amount: "60000"}, api.CreateOptions{})
	d.expect(err != nil && strings.Contains(err.Error(), "incremental authorization first"), "completion over the tolerance must be refused")
	d.mustDo("final bill ¥48,600 with the minibar", api.TransactionRequest{Op: "completion", Original: pre.ID, Amount: "48600"}, "approved")

	d.section("Restaurant and shop")
	d.card("FRONT001", mc)
	dinner := d.mustDo("dinner ¥4,500, contactless", api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "4500"}, "approved")
	d.mustDo("a dish sent back: refund ¥1,000", api.TransactionRequest{Op: "refund", Original: dinner.ID, Amount: "1000"}, "approved")
	_, err = d.do("refund ¥4,000 more (only ¥3,500 left)", api.TransactionRequest{Op: "refund", Original: dinner.ID, Amount: "4000"}, api.CreateOptions{})
	d.expect(err != nil, "a refund above what is left must be refused")

	d.section("Cards the issuer declines")
	for _, c := range []struct{ pan, what string }{
		{"4000000000000002", "do not honor (05)"}, {"4000000000009995", "insufficient funds (51)"}, {"4000000000000069", "expired card (54)"},
	} {
		d.card("FRONT001", terminal.Card{PAN: sterad.PAN(c.pan), Entry: "chip"})
		t := d.mustDo("sale ¥8,000: "+c.what, api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "8000"}, "declined")
		d.expect(t.Reason != "", "a decline must say why")
	}

	d.section("A guest changes their mind at the terminal")
	d.card("FRONT001", terminal.Card{Action: terminal.ActionCancel})
	d.mustDo("sale ¥3,000, the guest presses cancel", api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "3000"}, "cancelled")

	d.section("Two clerks, one terminal")
	d.card("FRONT001", terminal.Card{PAN: "3530111333300000", Entry: "chip", DelayMS: 1500})
	first, err := d.do("sale ¥2,000 (the guest is slow)", api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "2000"}, api.CreateOptions{NoWait: true})
	d.expect(err == nil, "first sale: %v", err)
	_, err = d.do("another sale on the same terminal", api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "1000"}, api.CreateOptions{})
	var ae *api.Error
	d.expect(errors.As(err, &ae) && ae.Status == 409, "a busy terminal must answer 409")
	if first != nil {
		t, err := d.c.WaitFinal(d.ctx, first.ID, 50*time.Millisecond)
		d.expect(err == nil && t.Status == "approved", "the slow guest's sale must be approved")
		if err == nil {
			fmt.Fprintf(d.out, "   %-46s → %s\n", "the slow guest's sale", strings.ToUpper(t.Status))
		}
	}

	if d.m.Config.CardData == sterad.CardDataBlind {
		d.blindDesks(today)
	} else {
		d.clearDesks(today)
	}
	yesterday := today.AddDate(0, 0, -1)

	d.section("The acquirer link goes down")
	if err := d.m.SimHost.SetOutage(true); err != nil {
		d.expect(false, "outage: %v", err)
	}
	d.waitOffline()
	d.card("FRONT001", visa)
	stood := d.mustDo("sale ¥9,000 offline (floor limit ¥50,000)", api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "9000"}, "stood_in")
	d.card("FRONT001", mc)
	d.mustDo("sale ¥80,000 while offline", api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "80000"}, "declined")
	d.mustDo("refund ¥1,000 of the dinner, accepted for later", api.TransactionRequest{Op: "refund", Original: dinner.ID, Amount: "1000"}, "pending")
	if err := d.m.SimHost.SetOutage(false); err != nil {
		d.expect(false, "outage off: %v", err)
	}
	d.waitQueueEmpty()
	if t, err := d.c.Transaction(d.ctx, stood.ID); err == nil {
		fmt.Fprintf(d.out, "   %-46s → %s: reported to the acquirer once (0220, SI=1)\n", "the link is back; the offline sale", strings.ToUpper(t.Status))
		d.expect(t.Status == "approved", "the stand-in must be approved once forwarded")
	}

	d.section("End of the day")
	d.books()

	d.section("Night audit: the batch closes (the acquirer disagrees, so sterad uploads)")
	d.m.SimHost.SetDisagree(true)
	b, err := d.m.Gateway.CloseBatch(d.ctx)
	d.expect(err == nil && b != nil && b.State == sterad.BatchClosed, "batch close: %v", err)
	if b != nil {
		for _, tt := range b.Terminals {
			fmt.Fprintf(d.out, "   batch %06d %-8s debits %d ¥%s, credits %d ¥%s → host %s (uploaded %d)\n", b.Number, tt.TerminalID,
				tt.Totals.DebitCount, groupYen(tt.Totals.DebitAmount), tt.Totals.CreditCount, groupYen(tt.Totals.CreditAmount), tt.Result, tt.Uploaded)
		}
	}
	var rep settlement.Report
	from, to := yesterday.Format(time.DateOnly), today.AddDate(0, 0, 1).Format(time.DateOnly)
	if err := d.c.SettlementReport(d.ctx, from, to, false, &rep); err != nil {
		d.expect(false, "report: %v", err)
		return
	}
	fmt.Fprintln(d.out, "\n   settlement report:")
	var buf strings.Builder
	printReport(&buf, &rep)
	for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		fmt.Fprintln(d.out, "   "+line)
	}
}

func (d *demo) waitOffline() {
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	for {
		if st, err := d.c.Status(ctx); err == nil && !st.Acquirer.Online {
			fmt.Fprintf(d.out, "   %-46s → sterad status: acquirer %s\n", "the test acquirer refuses connections", st.Acquirer.State)
			return
		}
		select {
		case <-ctx.Done():
			d.expect(false, "the link did not go offline")
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (d *demo) waitQueueEmpty() {
	ctx, cancel := context.WithTimeout(d.ctx, 15*time.Second)
	defer cancel()
	for {
		if _, sum, err := d.c.Queue(ctx); err == nil && sum.Depth == 0 {
			return
		}
		select {
		case <-ctx.Done():
			d.expect(false, "the queue did not drain")
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// books compares sterad's open batch with the test acquirer's ledger.
func (d *demo) books() {
	txns, err := d.m.Gateway.Transactions(d.ctx, sterad.TransactionFilter{})
	if err != nil {
		d.expect(false, "list transactions: %v", err)
		return
	}
	var ours sterad.Totals
	counts := map[sterad.Status]int{}
	for _, t := range txns {
		counts[t.Status]++
		if !t.Counted() {
			continue
		}
		if t.Op.Credit() {
			ours.CreditCount++
			ours.CreditAmount += t.Amount.Minor()
		} else {
			ours.DebitCount++
			ours.DebitAmount += t.Amount.Minor()
		}
	}
	host := d.m.SimHost.Ledger().Totals.Minor()
	fmt.Fprintf(d.out, "   sterad: %d transactions (%d approved, %d declined, %d cancelled, %d reversed, %d voided)\n",
		len(txns), counts[sterad.StatusApproved], counts[sterad.StatusDeclined], counts[sterad.StatusCancelled], counts[sterad.StatusReversed], counts[sterad.StatusVoided])
	fmt.Fprintf(d.out, "   sterad books:    %d debits ¥%s, %d credits ¥%s\n", ours.DebitCount, groupYen(ours.DebitAmount), ours.CreditCount, groupYen(ours.CreditAmount))
	fmt.Fprintf(d.out, "   acquirer ledger: %d debits ¥%s, %d credits ¥%s\n", host.DebitCount, groupYen(host.DebitAmount), host.CreditCount, groupYen(host.CreditAmount))
	d.expect(ours == host, "sterad's totals %+v differ from the acquirer's %+v", ours, host)
	q, _ := d.m.Gateway.Queue(d.ctx)
	d.expect(len(q) == 0, "nothing may be left owed to the acquirer, %d queued", len(q))
}

func groupYen(n int64) string { return strings.TrimPrefix(yen(fmt.Sprint(n)), "¥") }

// clearDesks is the telephone and reservations desks with card_data:
// clear: cards keyed through the API, the guarantee card kept encrypted.
func (d *demo) clearDesks(today time.Time) {
	d.section("Telephone reservation desk (keyed, virtual terminal)")
	tel := d.mustDo("telephone order ¥12,000, Amex keyed", api.TransactionRequest{Op: "sale", Amount: "12000",
		Card: &api.CardInput{PAN: "378282246310005", Expiry: today.AddDate(2, 0, 0).Format("0601")}}, "approved")
	d.mustDo("wrong amount: void it", api.TransactionRequest{Op: "void", Original: tel.ID}, "approved")
	key := fmt.Sprintf("folio-%d", time.Now().UnixNano())
	body := api.TransactionRequest{Op: "sale", Amount: "9800", Card: &api.CardInput{PAN: "30569309025904", Expiry: today.AddDate(1, 0, 0).Format("0601")}}
	t1, err := d.do("sale ¥9,800 with Idempotency-Key", body, api.CreateOptions{IdempotencyKey: key})
	d.expect(err == nil && t1.Status == "approved", "keyed sale")
	t2, err := d.do("the property system retries it (same key)", body, api.CreateOptions{IdempotencyKey: key})
	d.expect(err == nil && t1 != nil && t2 != nil && t2.ID == t1.ID, "a retried request must return the same transaction")

	d.section("The acquirer does not answer")
	d.mustDo("sale ¥7,000 on card …0119: no response in 2s", api.TransactionRequest{Op: "sale", Amount: "7000",
		Card: &api.CardInput{PAN: "4000000000000119", Expiry: today.AddDate(1, 0, 0).Format("0601")}}, "reversed")
	d.mustDo("sale ¥7,000 on card …0226: system malfunction", api.TransactionRequest{Op: "sale", Amount: "7000",
		Card: &api.CardInput{PAN: "4000000000000226", Expiry: today.AddDate(1, 0, 0).Format("0601")}}, "reversed")

	d.section("Reservations desk: a guaranteed reservation")
	yesterday := today.AddDate(0, 0, -1)
	guest := &api.StayInput{CheckIn: yesterday.Format(time.DateOnly), CheckOut: today.Format(time.DateOnly)}
	cc := d.mustDo("card check of the guarantee card (keyed)", api.TransactionRequest{Op: "cardcheck", Reference: "RSV-0077", Stay: guest,
		Card: &api.CardInput{PAN: "3530111333300000", Expiry: today.AddDate(3, 0, 0).Format("0601")}}, "approved")
	d.expect(cc.Token != nil, "a guarantee card check returns a token")
	if v, err := d.c.Vault(d.ctx); err == nil && len(v) == 1 {
		fmt.Fprintf(d.out, "   %-46s → kept encrypted: %s until %s\n", "the vault", v[0].MaskedPAN, v[0].RetainUntil.In(d.m.Config.Location()).Format("2006-01-02 15:04 MST"))
	} else {
		d.expect(false, "the guarantee card must be in the vault: %v", err)
	}
	d.mustDo("the guest never came: no-show fee ¥18,000", api.TransactionRequest{Op: "noshow", Reference: "RSV-0077", Amount: "18000", Stay: guest}, "approved")
	v, _ := d.c.Vault(d.ctx)
	d.expect(len(v) == 0, "the card must be destroyed after the no-show charge")
	fmt.Fprintf(d.out, "   %-46s → %d card(s) kept: the card number was destroyed\n", "the vault after the charge", len(v))

}

// blindDesks is the telephone and reservations desks with card_data:
// blind (the default): no card number reaches sterad; cards are read or
// keyed at an encrypting terminal, and the guarantee is a host token.
func (d *demo) blindDesks(today time.Time) {
	d.section("Telephone reservation desk: sterad runs card-data-blind")
	_, err := d.do("telephone order ¥12,000, Amex keyed through the API", api.TransactionRequest{Op: "sale", Amount: "12000",
		Card: &api.CardInput{PAN: "378282246310005", Expiry: today.AddDate(2, 0, 0).Format("0601")}}, api.CreateOptions{})
	var ae *api.Error
	d.expect(errors.As(err, &ae) && ae.Status == 400 && ae.Code == "card_data_blind", "a keyed card must be refused with 400 card_data_blind: %v", err)
	amex := terminal.Card{PAN: "378282246310005", Entry: "chip"}
	d.card("HAND0001", amex)
	tel := d.mustDo("the guest pays ¥12,000 at the handheld instead", api.TransactionRequest{Op: "sale", Terminal: "HAND0001", Amount: "12000"}, "approved")
	d.mustDo("wrong amount: void it (by its TI, no card data)", api.TransactionRequest{Op: "void", Original: tel.ID}, "approved")
	key := fmt.Sprintf("folio-%d", time.Now().UnixNano())
	d.card("HAND0001", terminal.Card{PAN: "30569309025904", Entry: "chip"})
	body := api.TransactionRequest{Op: "sale", Terminal: "HAND0001", Amount: "9800"}
	t1, err := d.do("sale ¥9,800 with Idempotency-Key", body, api.CreateOptions{IdempotencyKey: key})
	d.expect(err == nil && t1.Status == "approved", "sale with a key: %v", err)
	t2, err := d.do("the property system retries it (same key)", body, api.CreateOptions{IdempotencyKey: key})
	d.expect(err == nil && t1 != nil && t2 != nil && t2.ID == t1.ID, "a retried request must return the same transaction")

	d.section("The acquirer does not answer")
	d.card("FRONT001", terminal.Card{PAN: "4000000000000119", Entry: "chip"})
	d.mustDo("sale ¥7,000 on card …0119: no response in 2s", api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "7000"}, "reversed")
	d.card("FRONT001", terminal.Card{PAN: "4000000000000226", Entry: "chip"})
	d.mustDo("sale ¥7,000 on card …0226: system malfunction", api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "7000"}, "reversed")

	d.section("Reservations desk: a guaranteed reservation")
	yesterday := today.AddDate(0, 0, -1)
	guest := &api.StayInput{CheckIn: yesterday.Format(time.DateOnly), CheckOut: today.Format(time.DateOnly)}
	d.card("HAND0001", terminal.Card{PAN: "3530111333300000", Entry: "keyed"})
	cc := d.mustDo("card check keyed at the handheld (encrypted)", api.TransactionRequest{Op: "cardcheck", Terminal: "HAND0001", Reference: "RSV-0077", Stay: guest}, "approved")
	d.expect(cc.Token != nil, "a guarantee card check returns a token")
	if v, err := d.c.Vault(d.ctx); err == nil && len(v) == 1 && v[0].Token != "" {
		fmt.Fprintf(d.out, "   %-46s → kept: the host token of %s until %s, no card\n", "the vault", v[0].MaskedPAN, v[0].RetainUntil.In(d.m.Config.Location()).Format("2006-01-02 15:04 MST"))
	} else {
		d.expect(false, "the guarantee token must be in the vault: %v", err)
	}
	d.mustDo("the guest never came: no-show fee ¥18,000 by the token", api.TransactionRequest{Op: "noshow", Reference: "RSV-0077", Amount: "18000", Stay: guest}, "approved")
	v, _ := d.c.Vault(d.ctx)
	d.expect(len(v) == 0, "the token must be dropped after the no-show charge")
	fmt.Fprintf(d.out, "   %-46s → %d guarantee(s) kept\n", "the vault after the charge", len(v))
}
