package offline_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/offline"
)

// genFixture regenerates testdata/store-v1 from the code as it is. The
// fixture in the repository was written by the store as it was before
// schema version 2 (its dek.slots hold unwrapped keys): do not regenerate
// it with newer code, or the migration test no longer tests anything.
var genFixture = flag.Bool("gen-fixture", false, "write testdata/store-v1 (schema 1) with this code")

// fixtureV1 is where the schema-1 store fixture lives.
var fixtureV1 = filepath.Join("..", "testdata", "store-v1")

// What the fixture holds: the migration test checks each of these.
var (
	fixtureT0      = time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)
	fixturePAN     = "4111111111111111"
	fixtureTxnIDs  = []string{"01FIXTURE0000000000000001", "01FIXTURE0000000000000002", "01FIXTURE0000000000000003"}
	fixtureCardOwn = []string{"01FIXTURE0000000000000001", sterad.VaultOwner("RSV-FIX-1")}
)

func TestGenerateFixtureV1(t *testing.T) {
	if !*genFixture {
		t.Skip("run with -gen-fixture to regenerate testdata/store-v1")
	}
	ctx := context.Background()
	if err := os.RemoveAll(fixtureV1); err != nil {
		t.Fatal(err)
	}
	opts := offline.DefaultOptions()
	opts.Clock = sterad.NewFakeClock(fixtureT0)
	db, err := offline.Open(fixtureV1, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b, err := db.CurrentBatch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range fixtureTxnIDs {
		tx := txn(id, fixtureT0.Add(time.Duration(i)*time.Minute))
		tx.Batch = b.Number
		c := sterad.Change{Put: []*sterad.Transaction{tx},
			Idempotency: &sterad.IdempotencyRecord{Key: tx.IdempotencyKey, Fingerprint: db.MAC([]byte(id)), TxnID: id, CreatedAt: tx.CreatedAt}}
		if i == 0 {
			c.SealCards = []sterad.SealCard{{Owner: id, Card: testCard(fixturePAN)}}
		}
		if i == 2 {
			c.Enqueue = []sterad.QueueItem{{TxnID: id, Kind: sterad.QueueAdvice, CreatedAt: tx.CreatedAt}}
		}
		apply(t, db, c)
	}
	stay := sterad.Stay{CheckIn: sterad.Date{Year: 2026, Month: 4, Day: 10}, CheckOut: sterad.Date{Year: 2026, Month: 4, Day: 12}}
	apply(t, db, sterad.Change{
		SealCards: []sterad.SealCard{{Owner: sterad.VaultOwner("RSV-FIX-1"), Card: testCard(fixturePAN)}},
		PutVault: []*sterad.VaultEntry{{Reference: "RSV-FIX-1", MaskedPAN: "411111******1111", Brand: sterad.BrandVisa,
			Stay: stay, CheckTxn: fixtureTxnIDs[1], CreatedAt: fixtureT0, RetainUntil: fixtureT0.Add(30 * 24 * time.Hour)}},
		PutReservations: []*sterad.Reservation{{Reference: "RSV-FIX-1", Stay: stay, State: sterad.ReservationGuaranteed,
			MaskedPAN: "411111******1111", Brand: sterad.BrandVisa, CheckTxn: fixtureTxnIDs[1], CardKept: true}},
	})
	for range 3 {
		if _, err := db.NextSTAN(ctx, "TRM00001", fixtureT0); err != nil {
			t.Fatal(err)
		}
	}
	b.State = sterad.BatchClosed
	b.ClosedAt = fixtureT0.Add(time.Hour)
	apply(t, db, sterad.Change{PutBatches: []*sterad.Batch{b}})
	if _, err := db.CurrentBatch(ctx); err != nil { // batch 2, open
		t.Fatal(err)
	}
}
