package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/settlement"
)

func newBatchCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "batch", Short: "The settlement batch: close it, list the batches"}
	var noWait bool
	closeCmd := &cobra.Command{
		Use:   "close",
		Short: "Close the open batch now (the daemon also does it nightly at settlement.cutoff)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			n, err := c.StartClose(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if noWait {
				if g.json {
					return printJSON(out, map[string]int{"batch": n})
				}
				fmt.Fprintf(out, "closing batch %06d: see it with `sterad batch list`\n", n)
				return nil
			}
			if !g.json {
				fmt.Fprintf(out, "closing batch %06d…\n", n)
			}
			var bar *progressbar.ProgressBar
			defer func() {
				if bar != nil {
					bar.Finish()
				}
			}()
			for {
				b, err := c.Batch(cmd.Context(), n)
				if err != nil {
					return err
				}
				p := b.Progress
				if p != nil && p.Phase == "uploading" && p.ToUpload > 0 && !g.json {
					if bar == nil {
						bar = progressbar.NewOptions(p.ToUpload, progressbar.OptionSetWriter(progressWriter(out)),
							progressbar.OptionSetDescription("uploading "+p.Terminal), progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
					}
					bar.Set(p.Uploaded)
				}
				if b.State == sterad.BatchClosed || p != nil && !p.Running && p.Error != "" {
					if bar != nil {
						bar.Finish()
						bar = nil
					}
					if g.json {
						return printJSON(out, b)
					}
					printBatch(out, b.Batch, p)
					if b.State != sterad.BatchClosed {
						return &cliError{exit: ExitPending, code: "batch_closing",
							err: fmt.Errorf("batch %06d is still closing: %s (sterad retries it%s)", n, p.Error, retryAt(p))}
					}
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(100 * time.Millisecond):
				}
			}
		},
	}
	closeCmd.Flags().BoolVar(&noWait, "no-wait", false, "return at once with the batch's number; the daemon closes it")
	list := &cobra.Command{
		Use:   "list",
		Short: "List every batch with its counts, amounts and the host's answers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			bs, err := c.Batches(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), bs)
			}
			for _, b := range bs {
				printBatch(cmd.OutOrStdout(), b.Batch, b.Progress)
			}
			return nil
		},
	}
	cmd.AddCommand(closeCmd, list)
	return cmd
}

// closeState describes a close under way or failing: its phase, the
// failed attempts with the last error, and the next retry.
func closeState(b *sterad.Batch, p *sterad.BatchProgress) string {
	var s string
	if p != nil && p.Running {
		s += "  " + p.Phase
	}
	if b.Attempts > 0 {
		s += fmt.Sprintf("  %d failed attempt(s), last error: %s", b.Attempts, b.LastError)
	}
	if p != nil && !p.Running {
		s += retryAt(p)
	}
	return s
}

// retryAt names the next retry of a failing close.
func retryAt(p *sterad.BatchProgress) string {
	if p == nil || p.NextRetry.IsZero() {
		return ""
	}
	return ", next retry " + stamp(p.NextRetry, layoutSeconds)
}

// progressWriter draws the bar on the terminal's stderr when the output is
// not a terminal of its own.
func progressWriter(out io.Writer) io.Writer {
	if out == os.Stdout {
		return os.Stderr
	}
	return out
}

func printBatch(w io.Writer, b *sterad.Batch, p *sterad.BatchProgress) {
	fmt.Fprintf(w, "batch %06d  %-7s opened %s", b.Number, b.State, stamp(b.OpenedAt, layoutMinutes))
	if !b.ClosedAt.IsZero() {
		fmt.Fprintf(w, "  closed %s", stamp(b.ClosedAt, layoutMinutes))
	}
	if b.State == sterad.BatchClosing {
		fmt.Fprint(w, closeState(b, p))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, o := range b.Ops {
		fmt.Fprintf(tw, "  %s\t%d\t%s\n", o.Op, o.Count, yen(fmt.Sprint(o.Amount)))
	}
	for _, t := range b.Terminals {
		sign, net := t.Totals.Net()
		line := fmt.Sprintf("  %s\tdebits %d %s\tcredits %d %s\tnet %s%s", t.TerminalID, t.Totals.DebitCount, yen(fmt.Sprint(t.Totals.DebitAmount)),
			t.Totals.CreditCount, yen(fmt.Sprint(t.Totals.CreditAmount)), sign, yen(fmt.Sprint(net)))
		if t.Result != "" {
			line += "\thost " + t.Result
		}
		if t.Uploaded > 0 {
			line += fmt.Sprintf("\tuploaded %d", t.Uploaded)
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

func newReportCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "report", Short: "Reports"}
	var from, to string
	var csv bool
	st := &cobra.Command{
		Use:   "settlement",
		Short: "Fees and payout dates per business day and card brand, from closed batches",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if from, to, err = reportRange(from, to, today()); err != nil {
				return err
			}
			if csv {
				return c.SettlementReport(cmd.Context(), from, to, true, cmd.OutOrStdout())
			}
			var rep settlement.Report
			if err := c.SettlementReport(cmd.Context(), from, to, false, &rep); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			printReport(cmd.OutOrStdout(), &rep)
			return nil
		},
	}
	st.Flags().StringVar(&from, "from", "", "first business day, YYYY-MM-DD (default: the first of this month, merchant's zone)")
	st.Flags().StringVar(&to, "to", "", "last business day, YYYY-MM-DD (default: today, or the end of --from's month)")
	st.Flags().BoolVar(&csv, "csv", false, "CSV output")
	cmd.AddCommand(st, newVoucherReportCommand(g))
	return cmd
}

func printReport(w io.Writer, r *settlement.Report) {
	fmt.Fprintf(w, "settlement %s – %s\n", r.From, r.To)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "DAY\tBRAND\tCOUNT\tGROSS\tREFUNDS\tNET\tRATE\tFEE\tPAID\tPAYOUT\t")
	for _, l := range r.Lines {
		rate := "-"
		if l.FeeRate.Valid {
			rate = l.FeeRate.Decimal.String() + "%"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", l.Day, l.Brand, l.Count, yen(fmt.Sprint(l.Gross)), yen(fmt.Sprint(l.Refunds)),
			yen(fmt.Sprint(l.Net)), rate, yen(fmt.Sprint(l.Fee)), yen(fmt.Sprint(l.Paid)), l.PayoutDate)
	}
	t := r.Total
	fmt.Fprintf(tw, "total\t\t%d\t%s\t%s\t%s\t\t%s\t%s\t\t\n", t.Count, yen(fmt.Sprint(t.Gross)), yen(fmt.Sprint(t.Refunds)), yen(fmt.Sprint(t.Net)),
		yen(fmt.Sprint(t.Fee)), yen(fmt.Sprint(t.Paid)))
	tw.Flush()
	if len(r.Payouts) > 0 {
		fmt.Fprintln(w, "payouts:")
		for _, p := range r.Payouts {
			fmt.Fprintf(w, "  %s  %s\n", p.Date, yen(fmt.Sprint(p.Paid)))
		}
	}
	for _, warn := range r.Warnings {
		fmt.Fprintln(w, "warning:", warn)
	}
}
