package sterad

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Guaranteed reservations (domain/README.md, bulk-merchant Q4–Q11): the
// hotel checks the card a guest gives to guarantee a reservation, keeps it
// only while a no-show charge may still be made, charges one night when
// the guest neither arrives nor cancels, and then destroys the card number.

// checkNoShow checks a no-show charge against the reservation's state and
// finds its card: keyed now, a host token, or the card kept in the vault.
// The caller holds the reservation's lock.
func (g *Gateway) checkNoShow(ctx context.Context, p *plan, now time.Time) error {
	loc := g.cfg.Location
	from := p.stay.CheckIn.Time(loc).Add(g.cfg.NoShowCutoff)
	if now.Before(from) {
		return Errorf(EConflict, "noshow_too_early", "a no-show can be charged only from %s on the arrival day: reservation %s arrives %s",
			from.Format("15:04"), p.reference, p.stay.CheckIn)
	}
	charged, err := g.store.Transactions(ctx, TransactionFilter{Reference: p.reference, Op: OpNoShow})
	if err != nil {
		return err
	}
	for _, t := range charged {
		switch t.Status {
		case StatusApproved, StatusStoodIn, StatusPending, StatusUnknown:
			return Errorf(EConflict, "already_charged", "reservation %s already has a no-show charge (%s, %s): void or refund it first", p.reference, t.ID, t.Status)
		}
	}
	if p.token != "" {
		known, err := g.knownToken(ctx, p.token)
		if err != nil {
			return err
		}
		if !known {
			return Errorf(ENotFound, "unknown_token", "unknown card token: it was not issued by a card check here")
		}
		p.entry = EntryToken
		return nil
	}
	if p.card != nil {
		return nil
	}
	card, err := g.store.OpenCard(ctx, VaultOwner(p.reference))
	if errors.Is(err, ErrNotFound) {
		return Errorf(ENotFound, "no_card_kept", "no card is kept for reservation %s: key the card (pan and expiry) or give its token", p.reference)
	}
	if err != nil {
		return fmt.Errorf("open vault card of %s: %w", p.reference, err)
	}
	card.Entry = EntryKeyed
	p.card = card
	return nil
}

// knownToken reports whether a card check here obtained this token.
func (g *Gateway) knownToken(ctx context.Context, token string) (bool, error) {
	entries, err := g.store.Vault(ctx)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if e.Token == token {
			return true, nil
		}
	}
	checks, err := g.store.Transactions(ctx, TransactionFilter{Op: OpCardCheck})
	if err != nil {
		return false, err
	}
	for _, t := range checks {
		if t.Token == token {
			return true, nil
		}
	}
	return false, nil
}

// vaultCard keeps the card of an approved card check for a possible
// no-show: sealed under the reservation, until its retention ends.
func (g *Gateway) vaultCard(ctx context.Context, t *Transaction, c *txChange, now time.Time) error {
	card, err := g.store.OpenCard(ctx, t.ID)
	if errors.Is(err, ErrNotFound) {
		return nil // nothing to keep (keyed without a card: cannot happen)
	}
	if err != nil {
		return fmt.Errorf("open card of %s: %w", t.ID, err)
	}
	c.SealCards = append(c.SealCards, SealCard{Owner: VaultOwner(t.Reference), Card: card})
	c.PutVault = append(c.PutVault, &VaultEntry{
		Reference: t.Reference, MaskedPAN: t.MaskedPAN, Brand: t.Brand, Stay: *t.Stay, Token: t.Token,
		CheckTxn: t.ID, CreatedAt: now, RetainUntil: g.retainUntil(*t.Stay),
	})
	return nil
}

// retainUntil is the end of a guarantee card's retention: the end of the
// check-out day plus the configured retention.
func (g *Gateway) retainUntil(s Stay) time.Time {
	return s.CheckOut.AddDays(1).Time(g.cfg.Location).Add(g.cfg.VaultRetention)
}

// releaseVault destroys a reservation's guarantee card in the change, if
// one is kept.
func (g *Gateway) releaseVault(ctx context.Context, ref string, c *txChange) error {
	if ref == "" {
		return nil
	}
	if _, err := g.store.VaultEntry(ctx, ref); errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	c.DestroyCards = append(c.DestroyCards, VaultOwner(ref))
	c.DeleteVault = append(c.DeleteVault, ref)
	return nil
}

// Vault lists the guarantee cards kept (masked) and until when.
func (g *Gateway) Vault(ctx context.Context) ([]*VaultEntry, error) { return g.store.Vault(ctx) }

// ReleaseVault destroys the guarantee card of a reservation that was
// cancelled: nothing can be charged to it any more.
func (g *Gateway) ReleaseVault(ctx context.Context, ref string) (*VaultEntry, error) {
	unlock := g.locks.lock("ref:" + ref)
	defer unlock()
	e, err := g.store.VaultEntry(ctx, ref)
	if errors.Is(err, ErrNotFound) {
		return nil, Errorf(ENotFound, "unknown_reference", "no card is kept for reservation %q", ref)
	}
	if err != nil {
		return nil, err
	}
	c := Change{DestroyCards: []string{VaultOwner(ref)}, DeleteVault: []string{ref}}
	if err := g.store.Apply(ctx, c); err != nil {
		return nil, err
	}
	g.log.Info("guarantee card destroyed: reservation cancelled", "reference", ref, "card", e.MaskedPAN)
	return e, nil
}

// PurgeResult says what a purge destroyed.
type PurgeResult struct {
	Vault []*VaultEntry `json:"vault"` // guarantee cards past their retention
	Cards []string      `json:"cards"` // transactions whose card is no longer needed
}

// Purge destroys every card no longer needed: guarantee cards past their
// retention, and cards of pre-authorizations that were never completed
// once their stay's retention has passed. It runs every PurgeInterval and
// on demand.
func (g *Gateway) Purge(ctx context.Context) (*PurgeResult, error) {
	now := g.clock.Now()
	res := &PurgeResult{Vault: []*VaultEntry{}, Cards: []string{}}
	entries, err := g.store.Vault(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if now.Before(e.RetainUntil) {
			continue
		}
		unlock := g.locks.lock("ref:" + e.Reference)
		err := g.store.Apply(ctx, Change{DestroyCards: []string{VaultOwner(e.Reference)}, DeleteVault: []string{e.Reference}})
		unlock()
		if err != nil {
			return res, err
		}
		res.Vault = append(res.Vault, e)
	}
	preauths, err := g.store.Transactions(ctx, TransactionFilter{Op: OpPreauth})
	if err != nil {
		return res, err
	}
	for _, p := range preauths {
		if !p.HasCard || p.CompletedBy != "" || p.Stay == nil || now.Before(g.retainUntil(*p.Stay)) {
			continue
		}
		_, _, err := g.modify(ctx, p.ID, func(t *Transaction, c *txChange) error {
			if !t.HasCard {
				return nil
			}
			c.DestroyCards = append(c.DestroyCards, t.ID)
			t.HasCard = false
			t.Record(t.Step, now, "card destroyed: the stay's retention has passed")
			return nil
		})
		if err != nil {
			return res, err
		}
		res.Cards = append(res.Cards, p.ID)
	}
	if n := len(res.Vault) + len(res.Cards); n > 0 {
		g.log.Info("purged card data", "vault", len(res.Vault), "transactions", len(res.Cards))
	}
	return res, nil
}

// purgeLoop purges every PurgeInterval.
func (g *Gateway) purgeLoop(ctx context.Context) {
	t := time.NewTicker(g.cfg.PurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := g.Purge(ctx); err != nil && ctx.Err() == nil {
				g.log.Error("purge card data", "err", err)
			}
		}
	}
}
