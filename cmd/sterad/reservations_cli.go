package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
)

// Version 1.1 client commands: checkout, holds, report vouchers (cancel,
// deposit and adjust are payment commands: payments.go).

func newCheckoutCommand(g *globalOptions) *cobra.Command {
	var o struct {
		ref, original, terminal, checkin, checkout, booking string
		plan, other, bathingTax, idemKey, holderReason      string
		guests                                              int
		vouchers, otherHolder                               []string
	}
	cmd := &cobra.Command{
		Use:   "checkout",
		Short: "Check out with split tender: travel vouchers against the room plan, deposits, then the card",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := api.CheckoutRequest{Reference: o.ref, Original: o.original, Terminal: o.terminal, Guests: o.guests, Booking: o.booking,
				RoomPlan: api.FlexAmount(o.plan), Other: api.FlexAmount(o.other), BathingTax: api.FlexAmount(o.bathingTax)}
			if o.checkin != "" || o.checkout != "" {
				req.Stay = &api.StayInput{CheckIn: o.checkin, CheckOut: o.checkout}
			}
			for _, v := range o.vouchers {
				u, err := voucherFlag(v, true, "")
				if err != nil {
					return err
				}
				req.Vouchers = append(req.Vouchers, u)
			}
			for _, v := range o.otherHolder {
				u, err := voucherFlag(v, false, o.holderReason)
				if err != nil {
					return err
				}
				req.Vouchers = append(req.Vouchers, u)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			res, code, err := c.Checkout(cmd.Context(), req, api.CheckoutOptions{IdempotencyKey: o.idemKey})
			if err != nil {
				return err
			}
			if g.json {
				if err := printJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
				return checkoutOutcome(res) // cliout.go
			}
			if code == 200 {
				fmt.Fprintln(cmd.OutOrStdout(), "(replayed: this Idempotency-Key was used before; nothing new was sent)")
			}
			printCheckout(cmd.OutOrStdout(), res)
			return checkoutOutcome(res)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.ref, "ref", "", "reservation reference")
	f.StringVar(&o.original, "txn", "", "the pre-authorization to complete")
	f.StringVar(&o.terminal, "terminal", "", "or the terminal to read the card at")
	f.StringVar(&o.checkin, "checkin", "", "check-in date YYYY-MM-DD (default: the reservation's)")
	f.StringVar(&o.checkout, "checkout", "", "check-out date YYYY-MM-DD")
	f.IntVar(&o.guests, "guests", 0, "number of guests")
	f.StringVar(&o.booking, "booking", "direct", "how the stay was booked: direct, or the agent's name")
	f.StringVar(&o.plan, "room-plan", "", "the basic room plan (宿泊プラン) of the stay, in yen")
	f.StringVar(&o.other, "other", "", "charges outside the plan (food, drinks, souvenirs), in yen")
	f.StringVar(&o.bathingTax, "bathing-tax", "", "bathing tax (入湯税), in yen: never paid by vouchers")
	f.StringArrayVar(&o.vouchers, "voucher", nil, "a travel voucher PROGRAM:NUMBER (repeat for each)")
	f.StringArrayVar(&o.otherHolder, "voucher-other-holder", nil, "a voucher PROGRAM:NUMBER named for someone else (needs --holder-reason)")
	f.StringVar(&o.holderReason, "holder-reason", "", "why a voucher named for someone else is used (recorded)")
	f.StringVar(&o.idemKey, "idempotency-key", "", "retry-safe key: the same key never charges twice")
	return cmd
}

// voucherFlag parses PROGRAM:NUMBER.
func voucherFlag(v string, holderMatches bool, reason string) (sterad.VoucherUse, error) {
	program, number, ok := strings.Cut(v, ":")
	if !ok || program == "" || number == "" {
		return sterad.VoucherUse{}, fmt.Errorf("--voucher %q: use PROGRAM:NUMBER, e.g. OITA2016:0000000001", v)
	}
	return sterad.VoucherUse{Program: program, Number: number, HolderMatches: holderMatches, HolderReason: reason}, nil
}

func printCheckout(w io.Writer, r *api.CheckoutResult) {
	fmt.Fprintf(w, "CHECKED OUT  %s\n", r.Reference)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  vouchers\t%s\n", yen(r.VouchersApplied))
	for _, v := range r.Vouchers {
		fmt.Fprintf(tw, "    %s %s\t%s\n", v.Program, v.Number, yen(v.Applied))
	}
	fmt.Fprintf(tw, "  deposits\t%s\n", yen(r.DepositsApplied))
	fmt.Fprintf(tw, "  card\t%s\n", yen(r.CardAmount))
	if r.Refund != "" && r.Refund != "0" {
		fmt.Fprintf(tw, "  refunded\t%s\n", yen(r.Refund))
	}
	tw.Flush()
	if r.Transaction != nil {
		printTransaction(w, r.Transaction)
	}
	for _, t := range r.Refunds {
		printTransaction(w, t)
	}
}

func newHoldsCommand(g *globalOptions) *cobra.Command {
	var older string
	cmd := &cobra.Command{
		Use:   "holds",
		Short: "Open pre-authorizations (not completed or voided): reference, amount, age",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			hs, err := c.Holds(cmd.Context(), older)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), hs)
			}
			if len(hs) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no open pre-authorizations")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tREFERENCE\tAMOUNT\tAGE\tCHECK-OUT\tCARD\tNOTE")
			for _, h := range hs {
				out, note := "", ""
				if h.Stay != nil {
					out = h.Stay.CheckOut.String()
				}
				switch {
				case h.Old:
					note = "ALERT: held too long"
				case h.CheckoutPassed:
					note = "check-out passed"
				case h.CheckoutToday:
					note = "checks out today"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, h.Reference, yen(h.Amount.String()), h.Age, out, h.MaskedPAN, note)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&older, "older-than", "", "only holds at least this old (7d, 48h)")
	return cmd
}

func newVoucherReportCommand(g *globalOptions) *cobra.Command {
	var month string
	var csv, log bool
	cmd := &cobra.Command{
		Use:   "vouchers",
		Short: "The travel-voucher log and the month's claim per program",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if month == "" {
				return errors.New("--month (YYYY-MM) is required")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if csv {
				part := ""
				if log {
					part = "log"
				}
				return c.VoucherReport(cmd.Context(), month, true, part, cmd.OutOrStdout())
			}
			var rep sterad.VoucherReport
			if err := c.VoucherReport(cmd.Context(), month, false, "", &rep); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Voucher claim %s\n", rep.Month)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PROGRAM\tNAME\tVOUCHERS\tTOTAL\tDUE")
			for _, cl := range rep.Claims {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", cl.Program, cl.Name, cl.Vouchers, yen(cl.Total.String()), cl.Due)
			}
			tw.Flush()
			fmt.Fprintln(w, "\nVoucher log")
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NUMBER\tPROGRAM\tSTAY\tNIGHTS\tGUESTS\tRESERVATION\tAPPLIED\tUSED ON")
			for _, e := range rep.Log {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", e.Number, e.Program, e.StayDate, e.Nights, e.Guests, e.Reference, yen(e.Applied.String()), e.UsedOn)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&month, "month", "", "the month, YYYY-MM")
	cmd.Flags().BoolVar(&csv, "csv", false, "CSV output: the claim per program (with --log: the voucher log)")
	cmd.Flags().BoolVar(&log, "log", false, "with --csv: the voucher log instead of the claim")
	return cmd
}
