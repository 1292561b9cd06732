package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sterad/sterad"
)

// vault owns the reservations: the guarantee a card check gives, the card
// and token kept for it, no-show charges checked against it, its release
// (cancelled, checked in, charged, retention ended) and the purge of card
// data no longer needed. Every write of a reservation happens under its
// "ref:" lock (journal.lock). It may call the journal.
type vault struct {
	env
	j *journal
}

// Guaranteed reservations (docs/decisions.md, "Guaranteed reservations"): the
// hotel checks the card a guest gives to guarantee a reservation, keeps it
// only while a no-show charge may still be made, charges one night when
// the guest neither arrives nor cancels, and then destroys the card number.

// A reservation is an entity (Reservation): the stay it was guaranteed
// for, the card or token kept for it, its no-show charges. No-shows and
// tokens are checked against it, never against what a request types; a
// token is bound to the reservation whose card check obtained it and dies
// with it. Every write of a reservation, its vault entry and its card
// happens under the lock "ref:" + reference, taken before any transaction
// lock (journal gives the order), in the same Change as the
// transaction that changes it.

// checkNoShow checks a no-show charge against the stored reservation and
// finds its card: keyed now, the reservation's token, or the card kept in
// the vault. It adds the charge to the reservation in c, the change that
// creates t. The caller holds the reservation's lock.
func (vt *vault) checkNoShow(ctx context.Context, p *plan, t *sterad.Transaction, c *sterad.Change, now time.Time) error {
	r, err := vt.loadReservation(ctx, p.reference)
	if err != nil {
		return err
	}
	if r == nil {
		// A reservation sterad never checked: a token cannot be its own.
		if p.token != "" {
			return vt.foreignToken(ctx, p.reference, p.token)
		}
		if p.card == nil {
			return sterad.Errorf(sterad.ENotFound, "no_card_kept", "no card is kept for reservation %s: %s", p.reference, vt.noCardHint())
		}
		// Keyed: the typed stay becomes the reservation's, so that any
		// later charge is checked against it.
		r = &sterad.Reservation{Reference: p.reference, Stay: *p.stay, State: sterad.ReservationUnguaranteed,
			MaskedPAN: p.card.PAN.Masked(), Brand: p.card.Brand, CreatedAt: now}
	}
	if r.State == sterad.ReservationReleased {
		return sterad.Errorf(sterad.EConflict, "reservation_released", "reservation %s was released (%s): its card and token are destroyed and nothing can be charged to it; check a card for it again to guarantee it anew",
			r.Reference, r.Released)
	}
	if r.Stay != *p.stay {
		return sterad.Errorf(sterad.EConflict, "stay_mismatch", "reservation %s is for the stay %s to %s, not %s to %s as requested: the stored stay decides when a no-show may be charged",
			r.Reference, r.Stay.CheckIn, r.Stay.CheckOut, p.stay.CheckIn, p.stay.CheckOut)
	}
	from := r.Stay.CheckIn.Time(vt.cfg.Location).Add(vt.cfg.NoShowCutoff)
	if now.Before(from) {
		return sterad.Errorf(sterad.EConflict, "noshow_too_early", "a no-show can be charged only from %s on the arrival day: reservation %s arrives %s",
			from.Format("15:04"), r.Reference, r.Stay.CheckIn)
	}
	charged, err := vt.j.store.Transactions(ctx, sterad.TransactionFilter{Reference: p.reference, Op: sterad.OpNoShow})
	if err != nil {
		return err
	}
	for _, x := range charged {
		switch x.Status {
		case sterad.StatusApproved, sterad.StatusStoodIn, sterad.StatusPending, sterad.StatusUnknown:
			return sterad.Errorf(sterad.EConflict, "already_charged", "reservation %s already has a no-show charge (%s, %s): void it first (a refund leaves it charged)", p.reference, x.ID, x.Status)
		}
	}
	switch {
	case p.token != "":
		if r.Token == "" || r.Token != p.token {
			return vt.foreignToken(ctx, p.reference, p.token)
		}
		p.entry = sterad.EntryToken
		t.Entry, t.MaskedPAN, t.Brand = sterad.EntryToken, r.MaskedPAN, r.Brand
	case p.card != nil:
	case !r.CardKept && r.Token != "":
		// No card kept (card-data-blind keeps none): the reservation's
		// own token charges it.
		p.token, t.Token = r.Token, r.Token
		p.entry = sterad.EntryToken
		t.Entry, t.MaskedPAN, t.Brand = sterad.EntryToken, r.MaskedPAN, r.Brand
	default:
		if !r.CardKept {
			return sterad.Errorf(sterad.ENotFound, "no_card_kept", "no card is kept for reservation %s (%s): %s", p.reference, r.State, vt.noCardHint())
		}
		card, err := vt.j.store.OpenCard(ctx, sterad.VaultOwner(p.reference))
		if errors.Is(err, sterad.ErrNotFound) {
			return sterad.Errorf(sterad.ENotFound, "no_card_kept", "no card is kept for reservation %s: key the card (pan and expiry) or give its token", p.reference)
		}
		if err != nil {
			return fmt.Errorf("open vault card of %s: %w", p.reference, err)
		}
		card.Entry = sterad.EntryKeyed
		p.card = card
	}
	r.Charges = append(r.Charges, t.ID)
	r.UpdatedAt = now
	c.PutReservations = append(c.PutReservations, r)
	return nil
}

// noCardHint says how to charge a reservation sterad keeps nothing for.
func (vt *vault) noCardHint() string {
	if vt.blind() {
		return "give its token, or check a card for it at a terminal first (sterad runs card-data-blind)"
	}
	return "key the card (pan and expiry) or give its token"
}

// checkGuaranteeToken checks a token given to guarantee reservation ref
// (a card check by token): a token another reservation obtained, or one
// destroyed with its reservation, is refused. A token sterad never saw
// is the host's to judge.
func (vt *vault) checkGuaranteeToken(ctx context.Context, ref, token string) error {
	owner, err := vt.tokenOwner(ctx, token)
	if err != nil || owner == "" {
		return err
	}
	if owner != ref {
		return sterad.Errorf(sterad.EConflict, "token_mismatch", "card token %s was issued for reservation %s, not %s: a token guarantees only its own reservation",
			maskToken(token), owner, ref)
	}
	r, err := vt.loadReservation(ctx, ref)
	if err != nil {
		return err
	}
	if r == nil || r.Token != token {
		return sterad.Errorf(sterad.EConflict, "token_destroyed", "card token %s was destroyed when reservation %s was released: read the card at a terminal to guarantee it anew",
			maskToken(token), ref)
	}
	return nil
}

// foreignToken is the refusal of a token that is not the one kept for
// ref: 409 when it is another reservation's, 404 when sterad never issued
// it. The token is never echoed in full.
func (vt *vault) foreignToken(ctx context.Context, ref, token string) error {
	owner, err := vt.tokenOwner(ctx, token)
	if err != nil {
		return err
	}
	if owner == "" {
		return sterad.Errorf(sterad.ENotFound, "unknown_token", "unknown card token %s: it was not issued by a card check here", maskToken(token))
	}
	return sterad.Errorf(sterad.EConflict, "token_mismatch", "card token %s was issued for reservation %s, not %s: a token charges only the reservation whose card check obtained it",
		maskToken(token), owner, ref)
}

// maskToken shows the last four characters of a token.
func maskToken(token string) string {
	if len(token) <= 4 {
		return "…"
	}
	return "…" + token[len(token)-4:]
}

// tokenOwner returns the reference of the reservation a card check here
// obtained token for (kept, or released: its MAC is kept), "" when none.
func (vt *vault) tokenOwner(ctx context.Context, token string) (string, error) {
	mac := vt.j.store.MAC([]byte("token\x00" + token))
	rs, err := vt.j.store.Reservations(ctx)
	if err != nil {
		return "", err
	}
	for _, r := range rs {
		if r.Token == token || (r.TokenMAC != "" && r.TokenMAC == mac) {
			return r.Reference, nil
		}
	}
	entries, err := vt.j.store.Vault(ctx) // kept before reservations were stored
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.Token == token {
			return e.Reference, nil
		}
	}
	return "", nil
}

// loadReservation returns the stored reservation of ref; nil when there
// is none. A vault entry written before reservations were stored reads as
// the guaranteed reservation it stands for (Version 0: not stored yet).
func (vt *vault) loadReservation(ctx context.Context, ref string) (*sterad.Reservation, error) {
	r, err := vt.j.store.Reservation(ctx, ref)
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, sterad.ErrNotFound) {
		return nil, fmt.Errorf("read reservation %s: %w", ref, err)
	}
	e, err := vt.j.store.VaultEntry(ctx, ref)
	if errors.Is(err, sterad.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &sterad.Reservation{Reference: e.Reference, Stay: e.Stay, State: sterad.ReservationGuaranteed, MaskedPAN: e.MaskedPAN, Brand: e.Brand,
		Token: e.Token, CheckTxn: e.CheckTxn, CardKept: true, RetainUntil: e.RetainUntil, CreatedAt: e.CreatedAt, UpdatedAt: e.CreatedAt}, nil
}

// reservation returns a reservation as stored.
func (vt *vault) reservation(ctx context.Context, ref string) (*sterad.Reservation, error) {
	r, err := vt.loadReservation(ctx, ref)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, sterad.Errorf(sterad.ENotFound, "unknown_reference", "no reservation %q is known here", ref)
	}
	return r, nil
}

// vaultCard records an approved card check of a reservation: the
// reservation is guaranteed for the card check's stay, with its token and
// its card, sealed in the vault until its retention ends. A card check
// replaces what an earlier one kept. The caller holds the reservation's
// lock (modify takes it).
func (vt *vault) vaultCard(ctx context.Context, t *sterad.Transaction, c *txChange, now time.Time) error {
	r, err := vt.loadReservation(ctx, t.Reference)
	if err != nil {
		return err
	}
	if r == nil {
		r = &sterad.Reservation{Reference: t.Reference, CreatedAt: now}
	}
	r.Stay, r.State, r.Released = *t.Stay, sterad.ReservationGuaranteed, ""
	r.MaskedPAN, r.Brand, r.CheckTxn = t.MaskedPAN, t.Brand, t.ID
	r.Token, r.TokenMAC = t.Token, ""
	if t.Token != "" {
		r.TokenMAC = vt.j.store.MAC([]byte("token\x00" + t.Token))
	}
	r.RetainUntil, r.UpdatedAt = vt.retainUntil(*t.Stay), now
	if t.Policy != nil {
		// The policy shown with this card check; a check without a first
		// night keeps the one recorded earlier.
		r.Policy = t.Policy.Clone()
	}
	if r.Cancellation != "" || r.Checkout != nil {
		// Guaranteed anew: a new stay of the reference.
		r.Cancellation, r.Checkout, r.Deposits = "", nil, nil
	}
	card, err := vt.j.store.OpenCard(ctx, t.ID)
	switch {
	case errors.Is(err, sterad.ErrNotFound):
		// Nothing to keep (a card check without a readable card number):
		// a card an earlier check kept is superseded.
		r.CardKept = false
		c.DestroyCards = append(c.DestroyCards, sterad.VaultOwner(t.Reference))
		c.DeleteVault = append(c.DeleteVault, t.Reference)
	case err != nil:
		return fmt.Errorf("open card of %s: %w", t.ID, err)
	default:
		r.CardKept = true
		c.SealCards = append(c.SealCards, sterad.SealCard{Owner: sterad.VaultOwner(t.Reference), Card: card})
		c.PutVault = append(c.PutVault, &sterad.VaultEntry{
			Reference: t.Reference, MaskedPAN: t.MaskedPAN, Brand: t.Brand, Stay: *t.Stay, Token: t.Token,
			CheckTxn: t.ID, CreatedAt: now, RetainUntil: r.RetainUntil,
		})
	}
	c.PutReservations = append(c.PutReservations, r)
	return nil
}

// noShowCharged records an approved no-show charge on its reservation: it
// is charged, and the hotel has no reason to keep the card number. The
// caller holds the reservation's lock.
func (vt *vault) noShowCharged(ctx context.Context, t *sterad.Transaction, c *txChange, now time.Time) error {
	r, err := vt.loadReservation(ctx, t.Reference)
	if err != nil {
		return err
	}
	if r == nil { // a charge journaled before reservations were stored
		r = &sterad.Reservation{Reference: t.Reference, MaskedPAN: t.MaskedPAN, Brand: t.Brand, CreatedAt: now}
		if t.Stay != nil {
			r.Stay = *t.Stay
		}
	}
	if !slices.Contains(r.Charges, t.ID) {
		r.Charges = append(r.Charges, t.ID)
	}
	r.State, r.CardKept, r.UpdatedAt = sterad.ReservationCharged, false, now
	c.DestroyCards = append(c.DestroyCards, sterad.VaultOwner(t.Reference))
	c.DeleteVault = append(c.DeleteVault, t.Reference)
	c.PutReservations = append(c.PutReservations, r)
	return nil
}

// checkedIn releases the guarantee of a reservation whose guest checked
// in with a card at a terminal (t, approved). The caller holds the
// reservation's lock.
func (vt *vault) checkedIn(ctx context.Context, t *sterad.Transaction, c *txChange, now time.Time) error {
	if t.Reference == "" {
		return nil
	}
	r, err := vt.loadReservation(ctx, t.Reference)
	if err != nil || r == nil || !r.Releasable() {
		return err
	}
	vt.release(r, &c.Change, "checked in by "+t.ID, now)
	return nil
}

// release adds to c what releases a guaranteed reservation: its card is
// destroyed, its vault entry deleted, its token dead (only a keyed MAC of
// it stays, to recognise it).
func (vt *vault) release(r *sterad.Reservation, c *sterad.Change, why string, now time.Time) {
	r.State, r.Released, r.CardKept, r.UpdatedAt = sterad.ReservationReleased, why, false, now
	if r.Token != "" {
		r.TokenMAC, r.Token = vt.j.store.MAC([]byte("token\x00"+r.Token)), ""
	}
	c.DestroyCards = append(c.DestroyCards, sterad.VaultOwner(r.Reference))
	c.DeleteVault = append(c.DeleteVault, r.Reference)
	c.PutReservations = append(c.PutReservations, r)
}

// retainUntil is the end of a guarantee card's retention: the end of the
// check-out day plus the configured retention.
func (vt *vault) retainUntil(s sterad.Stay) time.Time {
	return s.CheckOut.AddDays(1).Time(vt.cfg.Location).Add(vt.cfg.VaultRetention)
}

// releaseVault releases the guarantee of a reservation that was
// cancelled: its card is destroyed and its token dies, nothing can be
// charged to it any more. It returns the vault entry that was kept.
func (vt *vault) releaseVault(ctx context.Context, ref string) (*sterad.VaultEntry, error) {
	unlock := vt.j.lock("ref:" + ref)
	defer unlock()
	for attempt := 1; ; attempt++ {
		e, err := vt.j.store.VaultEntry(ctx, ref)
		if err != nil && !errors.Is(err, sterad.ErrNotFound) {
			return nil, err
		}
		r, err := vt.loadReservation(ctx, ref)
		if err != nil {
			return nil, err
		}
		if r == nil || !r.Releasable() {
			return nil, sterad.Errorf(sterad.ENotFound, "unknown_reference", "no card or token is kept for reservation %q", ref)
		}
		if e == nil { // guaranteed by its token only
			e = r.VaultEntry()
		}
		var c sterad.Change
		vt.release(r, &c, "cancelled", vt.clock.Now())
		err = vt.j.apply(ctx, c)
		if errors.Is(err, sterad.ErrStale) && attempt < maxStaleRetries {
			continue
		}
		if err != nil {
			return nil, err
		}
		vt.log.Info("guarantee card destroyed: reservation cancelled", "reference", ref, "card", e.MaskedPAN)
		return e, nil
	}
}

// purge destroys every card no longer needed: guarantee cards and tokens
// past their retention (their reservations are released), and cards of
// pre-authorizations that were never completed once their stay's
// retention has passed. It runs every PurgeInterval and on demand.
func (vt *vault) purge(ctx context.Context) (*sterad.PurgeResult, error) {
	now := vt.clock.Now()
	res := &sterad.PurgeResult{Vault: []*sterad.VaultEntry{}, Cards: []string{}}
	entries, err := vt.j.store.Vault(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := vt.j.store.Reservations(ctx)
	if err != nil {
		return nil, err
	}
	var due []string
	for _, e := range entries {
		if !now.Before(e.RetainUntil) {
			due = append(due, e.Reference)
		}
	}
	for _, r := range rs {
		if r.Releasable() && !r.RetainUntil.IsZero() && !now.Before(r.RetainUntil) && !slices.Contains(due, r.Reference) {
			due = append(due, r.Reference)
		}
	}
	for _, ref := range due {
		e, err := vt.purgeReservation(ctx, ref, now)
		if err != nil {
			return res, err
		}
		if e != nil {
			res.Vault = append(res.Vault, e)
		}
	}
	preauths, err := vt.j.store.Transactions(ctx, sterad.TransactionFilter{Op: sterad.OpPreauth})
	if err != nil {
		return res, err
	}
	for _, p := range preauths {
		if !p.HasCard || p.CompletedBy != "" || p.Stay == nil || now.Before(vt.retainUntil(*p.Stay)) {
			continue
		}
		_, _, err := vt.j.modify(ctx, p.ID, func(t *sterad.Transaction, c *txChange) error {
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
		vt.log.Info("purged card data", "vault", len(res.Vault), "transactions", len(res.Cards))
	}
	return res, nil
}

// purgeReservation releases ref if its retention has ended, under its
// lock, and returns what the vault kept for it (nil when nothing was due
// any more).
func (vt *vault) purgeReservation(ctx context.Context, ref string, now time.Time) (*sterad.VaultEntry, error) {
	unlock := vt.j.lock("ref:" + ref)
	defer unlock()
	for attempt := 1; ; attempt++ {
		e, err := vt.j.store.VaultEntry(ctx, ref)
		if err != nil && !errors.Is(err, sterad.ErrNotFound) {
			return nil, err
		}
		r, err := vt.loadReservation(ctx, ref)
		if err != nil {
			return nil, err
		}
		var c sterad.Change
		switch {
		case r != nil && r.Releasable() && !now.Before(r.RetainUntil):
			if e == nil {
				e = r.VaultEntry()
			}
			vt.release(r, &c, "retention ended", now)
		case e != nil && !now.Before(e.RetainUntil):
			// A vault entry its reservation no longer guarantees.
			c.DestroyCards, c.DeleteVault = []string{sterad.VaultOwner(ref)}, []string{ref}
		default:
			return nil, nil
		}
		err = vt.j.apply(ctx, c)
		if errors.Is(err, sterad.ErrStale) && attempt < maxStaleRetries {
			continue
		}
		if err != nil {
			return nil, err
		}
		return e, nil
	}
}

// purgeLoop purges every PurgeInterval.
func (vt *vault) loop(ctx context.Context) {
	t := time.NewTicker(vt.cfg.PurgeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := vt.purge(ctx); err != nil && ctx.Err() == nil {
				vt.log.Error("purge card data", "err", err)
			}
		}
	}
}
