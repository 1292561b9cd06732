package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func newTxnCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "txn", Short: "List and show transactions"}
	var ref, status, date, op string
	var limit int
	var all, oldest bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List transactions, newest first (filter by reference, status, date)",
		Long: `List transactions, newest first: the last 20 unless --limit or --all says
otherwise (--oldest-first turns the order round). --date is a day in the
merchant's zone (settlement.timezone, Asia/Tokyo by default), the zone the
times are shown in.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return usageErrorf("--limit must be 1 or more (--all lists every transaction)")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"reference": ref, "status": status, "date": date, "op": op} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if !all {
				q.Set("limit", strconv.Itoa(limit))
			}
			if !oldest {
				q.Set("order", "newest")
			}
			txns, err := c.Transactions(cmd.Context(), q)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), txns)
			}
			printTransactionList(cmd.OutOrStdout(), txns)
			return nil
		},
	}
	list.Flags().StringVar(&ref, "ref", "", "reservation or folio reference")
	list.Flags().StringVar(&status, "status", "", "approved, declined, pending, …")
	list.Flags().StringVar(&date, "date", "", "day YYYY-MM-DD in the merchant's zone (settlement.timezone), as shown")
	list.Flags().StringVar(&op, "op", "", "sale, preauth, …")
	list.Flags().IntVar(&limit, "limit", 20, "at most this many (the newest)")
	list.Flags().BoolVar(&all, "all", false, "every matching transaction (no limit)")
	list.Flags().BoolVar(&oldest, "oldest-first", false, "oldest first")
	list.MarkFlagsMutuallyExclusive("limit", "all")
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a transaction and its journal",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			t, err := c.Transaction(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), t)
			}
			printTransaction(cmd.OutOrStdout(), t)
			return nil
		},
	}
	cmd.AddCommand(list, show)
	return cmd
}

func newQueueCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Show the store-and-forward queue (what is owed to the acquirer)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			items, sum, err := c.Queue(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"queue": items, "summary": sum})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%d queued, %d parked\n", sum.Depth, sum.Parked)
			for _, it := range items {
				parked := ""
				if it.Parked {
					parked = "  PARKED"
				}
				fmt.Fprintf(w, "  #%d  %-8s %s  attempts %d  since %s%s  %s\n", it.Seq, it.Kind, it.TxnID, it.Attempts,
					stamp(it.CreatedAt, layoutShort), parked, it.LastError)
			}
			return nil
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "flush",
		Short: "Forward the queue to the acquirer now",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.Flush(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), r)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sent %d, %d left in the queue\n", r.Sent, r.Depth)
			return nil
		},
	})
	return cmd
}

func newStatusCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the acquirer link, the terminals, the queue and the open batch",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), st)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "acquirer   %s (%s) since %s", st.Acquirer.State, st.Acquirer.Address, stamp(st.Acquirer.Since, layoutSeconds))
			if st.Acquirer.LastError != "" {
				fmt.Fprintf(w, "  last error: %s", st.Acquirer.LastError)
			}
			fmt.Fprintln(w)
			for _, t := range st.Terminals {
				fmt.Fprintf(w, "terminal   %-8s %-8s %-7s %s\n", t.ID, t.Kind, t.State, t.LastError)
			}
			fmt.Fprintf(w, "queue      %d queued, %d parked\n", st.Queue.Depth, st.Queue.Parked)
			if st.Batch != nil {
				fmt.Fprintf(w, "batch      %06d %s since %s\n", st.Batch.Number, st.Batch.State, stamp(st.Batch.OpenedAt, layoutMinutes))
			}
			if c := st.Closing; c != nil {
				fmt.Fprintf(w, "closing    %06d%s\n", c.Number, closeState(c.Batch, c.Progress))
			}
			for _, a := range st.Alerts {
				fmt.Fprintf(w, "ALERT      %s %s %s %s: %s\n", a.ID, a.Op, yen(a.Amount), a.MaskedPAN, a.Reason)
			}
			return nil
		},
	}
}

func newTerminalsCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "terminals",
		Short: "List the terminals and their state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ts, err := c.Terminals(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), ts)
			}
			w := cmd.OutOrStdout()
			for _, t := range ts {
				where := t.Path
				if t.USB != "" {
					where = strings.TrimSpace("usb " + t.USB + " " + t.Path)
				}
				fmt.Fprintf(w, "%-8s %-8s %-7s %-6s %-16s model %s fw %s", t.ID, t.Kind, t.State, t.Transport, where, t.Model, t.Firmware)
				if !t.LastSeen.IsZero() {
					fmt.Fprintf(w, "  last seen %s", stamp(t.LastSeen, layoutClock))
				}
				if t.CurrentTxn != "" {
					fmt.Fprintf(w, "  txn %s", t.CurrentTxn)
				}
				if t.LastError != "" {
					fmt.Fprintf(w, "  error: %s", t.LastError)
				}
				fmt.Fprintln(w)
			}
			return nil
		},
	}
	cmd.AddCommand(newDiscoverCommand(g))
	return cmd
}
