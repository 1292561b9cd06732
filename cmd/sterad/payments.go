package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
)

// paymentOptions are the flags of the commands that start a transaction.
type paymentOptions struct {
	terminal, amount, ref, checkin, checkout string
	txn, pan, expiry, token, idemKey         string
	firstNight                               string
	noWait                                   bool
}

func (o *paymentOptions) request(op sterad.Op) api.TransactionRequest {
	r := api.TransactionRequest{Op: string(op), Terminal: o.terminal, Amount: api.FlexAmount(o.amount),
		Reference: o.ref, Original: o.txn, Token: o.token, FirstNight: api.FlexAmount(o.firstNight)}
	if o.pan != "" || o.expiry != "" {
		r.Card = &api.CardInput{PAN: sterad.PAN(o.pan), Expiry: o.expiry}
	}
	if o.checkin != "" || o.checkout != "" {
		r.Stay = &api.StayInput{CheckIn: o.checkin, CheckOut: o.checkout}
	}
	return r
}

// newPaymentCommands returns preauth, sale, incremental, complete, refund,
// void, cardcheck and noshow.
func newPaymentCommands(g *globalOptions) []*cobra.Command {
	type flagSet struct{ terminal, amount, ref, stay, txn, card, token, firstNight bool }
	specs := []struct {
		use, short string
		op         sterad.Op
		flags      flagSet
	}{
		{"preauth", "Pre-authorize at check-in (card at a terminal, or keyed)", sterad.OpPreauth, flagSet{terminal: true, amount: true, ref: true, stay: true, card: true}},
		{"sale", "Charge a card at a terminal, or a keyed card (telephone or mail order)", sterad.OpSale, flagSet{terminal: true, amount: true, ref: true, card: true}},
		{"incremental", "Add to a pre-authorization when the guest extends the stay", sterad.OpIncremental, flagSet{amount: true, txn: true}},
		{"complete", "Complete a pre-authorization at check-out with the final amount", sterad.OpCompletion, flagSet{amount: true, txn: true}},
		{"refund", "Refund part or all of a charge", sterad.OpRefund, flagSet{terminal: true, amount: true, txn: true}},
		{"void", "Void a transaction before the batch closes", sterad.OpVoid, flagSet{txn: true}},
		{"cardcheck", "Check the card of a guaranteed reservation (no charge)", sterad.OpCardCheck, flagSet{terminal: true, ref: true, stay: true, card: true, token: true, firstNight: true}},
		{"noshow", "Charge the no-show fee of a guaranteed reservation (card not present)", sterad.OpNoShow, flagSet{amount: true, ref: true, stay: true, card: true, token: true}},
		// Version 1.1 (cmd/sterad/reservations_cli.go has checkout, holds, report vouchers).
		{"cancel", "Cancel a guaranteed reservation: charge its fee by the recorded policy, release its card", sterad.OpCancellation, flagSet{ref: true}},
		{"deposit", "Take an advance deposit for a reservation (its token, or the card at a terminal)", sterad.OpDeposit, flagSet{terminal: true, amount: true, ref: true, stay: true, card: true, token: true}},
		{"adjust", "Change the amount of a charge: charge or refund only the difference (--amount is the new total)", sterad.OpAdjust, flagSet{terminal: true, amount: true, txn: true}},
	}
	var cmds []*cobra.Command
	for _, s := range specs {
		o := &paymentOptions{}
		cmd := &cobra.Command{
			Use:   s.use,
			Short: s.short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := g.client()
				if err != nil {
					return err
				}
				t, code, err := c.CreateTransaction(cmd.Context(), o.request(s.op), api.CreateOptions{IdempotencyKey: o.idemKey, NoWait: o.noWait})
				if err != nil {
					if ae, ok := err.(*api.Error); ok && ae.Transaction != nil && !g.json {
						printTransaction(cmd.ErrOrStderr(), ae.Transaction)
					}
					return err
				}
				if g.json {
					if err := printJSON(cmd.OutOrStdout(), t); err != nil {
						return err
					}
					return transactionOutcome(t) // cliout.go: exit 2 declined, 3 pending or unknown
				}
				if code == 200 {
					fmt.Fprintln(cmd.OutOrStdout(), "(replayed: this Idempotency-Key was used before; nothing new was sent)")
				}
				printTransaction(cmd.OutOrStdout(), t)
				printOutcomeNote(cmd.OutOrStdout(), t)
				return transactionOutcome(t)
			},
		}
		f := cmd.Flags()
		if s.flags.terminal {
			f.StringVar(&o.terminal, "terminal", "", "terminal that reads the card (e.g. FRONT001)")
		}
		if s.flags.amount {
			f.StringVar(&o.amount, "amount", "", "amount in yen, e.g. 12800")
		}
		if s.flags.ref {
			f.StringVar(&o.ref, "ref", "", "reservation or folio reference")
		}
		if s.flags.stay {
			f.StringVar(&o.checkin, "checkin", "", "check-in date YYYY-MM-DD")
			f.StringVar(&o.checkout, "checkout", "", "check-out date YYYY-MM-DD")
		}
		if s.flags.txn {
			f.StringVar(&o.txn, "txn", "", "the original transaction id")
		}
		if s.flags.card {
			f.StringVar(&o.pan, "pan", "", "card number keyed from the reservation")
			f.StringVar(&o.expiry, "expiry", "", "card expiry YYMM")
		}
		if s.flags.token {
			f.StringVar(&o.token, "token", "", "card token from a card check, instead of a card number (the API token: --api-token or STERAD_API_TOKEN)")
		}
		if s.flags.firstNight {
			f.StringVar(&o.firstNight, "first-night", "", "the first night's rate: records the cancellation policy with the reservation")
		}
		f.StringVar(&o.idemKey, "idempotency-key", "", "retry-safe key: the same key never charges twice")
		f.BoolVar(&o.noWait, "no-wait", false, "return at once instead of waiting for the final result")
		cmds = append(cmds, cmd)
	}
	return cmds
}
