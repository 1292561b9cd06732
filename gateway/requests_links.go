package gateway

import (
	"context"

	"github.com/sterad/sterad"
)

// The rules of linked transactions are the domain's (sterad.AdmitLink,
// sterad.LinkStillValid): the flows read what they decide from and apply
// what they decide.

// admitLink checks, under the original's lock, that t may act on
// p.original (sterad.AdmitLink) and records the link on both.
func (rq *requests) admitLink(ctx context.Context, p *plan, t *sterad.Transaction) error {
	linked, err := rq.linked(ctx, p.original)
	if err != nil {
		return err
	}
	b, err := rq.j.store.CurrentBatch(ctx)
	if err != nil {
		return err
	}
	return sterad.AdmitLink(t, p.original, sterad.LinkContext{Linked: linked, OpenBatch: b.Number, AtTerminal: p.term != nil, Tolerance: rq.cfg.CompletionTolerance})
}

// linked returns the transactions that refer to o.
func (rq *requests) linked(ctx context.Context, o *sterad.Transaction) ([]*sterad.Transaction, error) {
	return rq.j.store.Transactions(ctx, sterad.TransactionFilter{Original: o.ID})
}
