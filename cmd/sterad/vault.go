package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newVaultCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vault",
		Short: "Guarantee cards kept for possible no-show charges",
		Long: `A card checked for a guaranteed reservation (cardcheck with --ref and the stay)
is kept encrypted until the no-show charge, the guest's check-in, the
reservation's cancellation, or the end of its retention (check-out + 7 days):
then it is destroyed beyond recovery, and the reservation's token dies with it.
"vault show --ref R" shows the reservation as stored: the stay no-shows are
checked against, its state, card, token and charges.`,
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the guarantee cards kept (masked) and until when",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			entries, err := c.Vault(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), entries)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "REFERENCE\tCARD\tBRAND\tSTAY\tTOKEN\tKEPT UNTIL")
			for _, e := range entries {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s → %s\t%s\t%s\n", e.Reference, e.MaskedPAN, e.Brand, e.Stay.CheckIn, e.Stay.CheckOut,
					e.Token, stamp(e.RetainUntil, layoutMinutes))
			}
			return tw.Flush()
		},
	}
	purge := &cobra.Command{
		Use:   "purge",
		Short: "Destroy now every card past its retention (the daemon also does it hourly)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.Purge(cmd.Context())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "destroyed %d guarantee card(s) and %d pre-authorization card(s)\n", len(res.Vault), len(res.Cards))
			for _, e := range res.Vault {
				fmt.Fprintf(cmd.OutOrStdout(), "  %s  %s  (kept until %s)\n", e.Reference, e.MaskedPAN, stamp(e.RetainUntil, layoutMinutes))
			}
			return nil
		},
	}
	var ref string
	release := &cobra.Command{
		Use:   "release",
		Short: "Destroy the guarantee card of a cancelled reservation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ref == "" {
				return fmt.Errorf("--ref is required")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			e, err := c.ReleaseVault(cmd.Context(), ref)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), e)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "destroyed the card %s kept for %s\n", e.MaskedPAN, e.Reference)
			return nil
		},
	}
	release.Flags().StringVar(&ref, "ref", "", "reservation reference")
	var showRef string
	show := &cobra.Command{
		Use:   "show",
		Short: "Show a reservation: its stay, state, card or token kept, and no-show charges",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if showRef == "" {
				return fmt.Errorf("--ref is required")
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.Reservation(cmd.Context(), showRef)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), r)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "reference\t%s\n", r.Reference)
			fmt.Fprintf(tw, "state\t%s\n", r.State)
			if r.Released != "" {
				fmt.Fprintf(tw, "released\t%s\n", r.Released)
			}
			fmt.Fprintf(tw, "stay\t%s → %s\n", r.Stay.CheckIn, r.Stay.CheckOut)
			fmt.Fprintf(tw, "card\t%s %s (kept: %t)\n", r.MaskedPAN, r.Brand, r.CardKept)
			if r.Token != "" {
				fmt.Fprintf(tw, "token\t%s\n", r.Token)
			}
			if !r.RetainUntil.IsZero() {
				fmt.Fprintf(tw, "kept until\t%s\n", stamp(r.RetainUntil, layoutMinutes))
			}
			if r.CheckTxn != "" {
				fmt.Fprintf(tw, "card check\t%s\n", r.CheckTxn)
			}
			for _, id := range r.Charges {
				fmt.Fprintf(tw, "no-show\t%s\n", id)
			}
			return tw.Flush()
		},
	}
	show.Flags().StringVar(&showRef, "ref", "", "reservation reference")
	cmd.AddCommand(list, purge, release, show)
	return cmd
}
