package sterad

import (
	"time"
)

// OfflineLimits bound what the gateway approves on its own while the
// acquirer is unreachable (stand-in).
type OfflineLimits struct {
	FloorLimit Amount        // per transaction
	TotalLimit Amount        // across the stand-ins waiting in the queue
	MaxCount   int           // stand-ins waiting in the queue
	MaxAge     time.Duration // queued items older than this are parked for an operator
}

// DefaultOfflineLimits are the example limits of docs/configuration.md.
func DefaultOfflineLimits() OfflineLimits {
	return OfflineLimits{FloorLimit: NewAmount(50_000, JPY), TotalLimit: NewAmount(500_000, JPY), MaxCount: 100, MaxAge: 48 * time.Hour}
}

// CanStandIn reports whether the gateway may approve t on its own while
// the acquirer is unreachable: a card-present sale or pre-authorization.
func (t *Transaction) CanStandIn() bool {
	return t.Terminal != "" && (t.Op == OpSale || t.Op == OpPreauth)
}

// Deferrable reports whether t is accepted while the acquirer is
// unreachable and sent when it is back: a refund, a no-show charge or a
// late-cancellation fee, whose result is visible later.
func (t *Transaction) Deferrable() bool {
	return t.Op == OpRefund || t.Op == OpNoShow || t.Op == OpCancellation
}

// StandIn reports whether t was approved by the gateway while the acquirer
// was unreachable and its advice is owed.
func (t *Transaction) StandIn() bool { return t.LocalCode != "" }
