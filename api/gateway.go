package api

import (
	"context"

	"github.com/sterad/sterad"
)

// Gateway is what the API asks of the flows (a *gateway.Gateway, which
// the API does not import: cmd/sterad wires it).
type Gateway interface {
	Submit(ctx context.Context, r sterad.Request) (t *sterad.Transaction, replay bool, err error)
	Transaction(ctx context.Context, id string) (*sterad.Transaction, error)
	Transactions(ctx context.Context, f sterad.TransactionFilter) ([]*sterad.Transaction, error)
	Alerts(ctx context.Context) ([]*sterad.Transaction, error)
	Terminals() []sterad.TerminalInfo
	Acquirer() sterad.LinkStatus
	Queue(ctx context.Context) ([]sterad.QueueItem, error)
	Flush(ctx context.Context) (int, error)
	OpenBatch(ctx context.Context) (*sterad.Batch, error)
	Closing(ctx context.Context) (*sterad.Batch, error)
	Batch(ctx context.Context, n int) (*sterad.Batch, error)
	Batches(ctx context.Context) ([]*sterad.Batch, error)
	Progress(n int) (sterad.BatchProgress, bool)
	StartClose(ctx context.Context) (*sterad.CloseRun, error)
	Vault(ctx context.Context) ([]*sterad.VaultEntry, error)
	ReleaseVault(ctx context.Context, ref string) (*sterad.VaultEntry, error)
	Reservation(ctx context.Context, ref string) (*sterad.Reservation, error)
	Purge(ctx context.Context) (*sterad.PurgeResult, error)
}
