package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
)

// printJSON writes v indented.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// yen formats a decimal amount string as ¥12,800 (-¥1,000).
func yen(s string) string {
	if s == "" {
		return ""
	}
	if neg, ok := strings.CutPrefix(s, "-"); ok {
		return "-¥" + sterad.GroupDigits(neg)
	}
	return "¥" + sterad.GroupDigits(s)
}

// printTransaction writes a transaction for a person.
func printTransaction(w io.Writer, t *api.Transaction) {
	status := strings.ToUpper(t.Status)
	if t.Op == "cardcheck" && t.Status == "approved" {
		status = "VALID"
	}
	fmt.Fprintf(w, "%s  %s %s", status, t.Op, yen(t.Amount))
	if t.MaskedPAN != "" {
		fmt.Fprintf(w, "  %s %s", t.Brand, t.MaskedPAN)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "  %s\t%s\n", k, v)
		}
	}
	row("id", t.ID)
	row("reason", t.Reason)
	row("response code", t.ResponseCode)
	row("auth code", t.AuthCode)
	row("rrn", t.RRN)
	row("stan", t.STAN)
	if t.Batch != nil {
		row("batch", *t.Batch)
	}
	if t.Terminal != nil {
		row("terminal", *t.Terminal)
	}
	row("reference", t.Reference)
	if t.Original != nil {
		row("original", *t.Original)
	}
	if t.Token != nil {
		row("token", *t.Token)
	}
	if t.PolicyVersion != "" {
		row("policy", t.PolicyVersion+" row "+t.PolicyRow)
		row("charged to the card", yen(t.CardAmount))
	}
	for _, id := range t.Linked {
		row("linked", id)
	}
	if t.AuthorizedTotal != "" {
		row("authorized total", yen(t.AuthorizedTotal))
	}
	if t.Refunded != "" {
		row("refunded", yen(t.Refunded))
	}
	row("completed by", t.CompletedBy)
	row("voided by", t.VoidedBy)
	if t.Offline {
		row("offline", "yes")
	}
	row("terminal result", t.TerminalResult)
	row("created", stamp(t.CreatedAt, layoutSeconds))
	tw.Flush()
	if len(t.Events) > 0 {
		fmt.Fprintln(w, "  journal:")
		for _, e := range t.Events {
			fmt.Fprintf(w, "    %s  %-9s %-10s %s\n", stamp(e.At, layoutMillis), e.Status, e.Step, e.Note)
		}
	}
}

// printTransactionList writes one line per transaction.
func printTransactionList(w io.Writer, txns []*api.Transaction) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "CREATED (%s)\tID\tOP\tSTATUS\tAMOUNT\tCARD\tTERMINAL\tREFERENCE\tCODE\n", time.Now().In(merchantZone()).Format("MST"))
	for _, t := range txns {
		term := ""
		if t.Terminal != nil {
			term = *t.Terminal
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.CreatedAt.In(merchantZone()).Format(layoutShort), t.ID, t.Op,
			t.Status, yen(t.Amount), t.MaskedPAN, term, t.Reference, t.ResponseCode)
	}
	tw.Flush()
}
