package sterad

// VaultEntry is how the vault shows a reservation guaranteed by its
// token only.
func (r *Reservation) VaultEntry() *VaultEntry {
	return &VaultEntry{Reference: r.Reference, MaskedPAN: r.MaskedPAN, Brand: r.Brand, Stay: r.Stay, Token: r.Token,
		CheckTxn: r.CheckTxn, CreatedAt: r.CreatedAt, RetainUntil: r.RetainUntil}
}

// PurgeResult says what a purge destroyed.
type PurgeResult struct {
	Vault []*VaultEntry `json:"vault"` // guarantee cards (and tokens) past their retention
	Cards []string      `json:"cards"` // transactions whose card is no longer needed
}
