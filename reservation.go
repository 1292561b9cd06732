package sterad

// VaultEntry is how the vault shows a reservation guaranteed by its
// token only.
func (r *Reservation) VaultEntry() *VaultEntry {
	return &VaultEntry{Reference: r.Reference, MaskedPAN: r.MaskedPAN, Brand: r.Brand, Stay: r.Stay, Token: r.Token,
		CheckTxn: r.CheckTxn, CreatedAt: r.CreatedAt, RetainUntil: r.RetainUntil}
}

// Releasable reports whether r still holds something that can charge it:
// a guaranteed reservation (its card and/or token), or one charged as a
// no-show that kept its token (its card is destroyed at the charge; the
// token stays so that a charge voided by mistake can be made again).
// Releasing it (the hotel, check-in, the retention purge) destroys both.
func (r *Reservation) Releasable() bool {
	return r.State == ReservationGuaranteed || (r.State == ReservationCharged && r.Token != "")
}

// PurgeResult says what a purge destroyed.
type PurgeResult struct {
	Vault []*VaultEntry `json:"vault"` // guarantee cards (and tokens) past their retention
	Cards []string      `json:"cards"` // transactions whose card is no longer needed
}
