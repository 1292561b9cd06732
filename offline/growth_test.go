package offline_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/offline"
)

// saleWrites applies a keyed sale as the gateway journals it: created
// (with its idempotency key), a STAN, card read, sent (with the batch),
// answered, the outcome at the terminal, done. Each write puts the whole
// record again with one more event.
func saleWrites(ctx context.Context, db *offline.DB, at time.Time, batch int) error {
	return saleWritesStyled(ctx, db, at, batch, saleStyle{})
}

// saleStyle says how a sale's keys and times are made.
type saleStyle struct {
	// rng, when set, makes the idempotency key a random UUID and the
	// reference a random reservation number (what many a PMS sends:
	// keys in no order), and gives every time a clock's nanoseconds.
	rng *rand.Rand
	// zone is the zone of the times (the clock's local zone); nil: as given.
	zone *time.Location
}

func saleWritesStyled(ctx context.Context, db *offline.DB, at time.Time, batch int, st saleStyle) error {
	id := ulid.MustNew(ulid.Timestamp(at), ulid.DefaultEntropy()).String()
	key, ref := "pms-"+id, fmt.Sprintf("RSV-%d", at.Unix()%100000)
	jitter := func() time.Duration { return 0 }
	if st.rng != nil {
		u := make([]byte, 16)
		for i := range u {
			u[i] = byte(st.rng.Uint32())
		}
		key = fmt.Sprintf("%x-%x-%x-%x-%x", u[:4], u[4:6], u[6:8], u[8:10], u[10:])
		ref = fmt.Sprintf("RSV-%07d", st.rng.IntN(10_000_000))
		jitter = func() time.Duration { return time.Duration(st.rng.Int64N(int64(time.Second))) }
		at = at.Add(jitter())
	}
	if st.zone != nil {
		at = at.In(st.zone)
	}
	t := &sterad.Transaction{
		ID: id, Op: sterad.OpSale, Status: sterad.StatusPending, Step: sterad.StepCreated,
		Amount: sterad.NewAmount(12800, sterad.JPY), Currency: "JPY", Terminal: "FRONT001", TerminalID: "FRONT001",
		Reference: ref, CreatedAt: at, UpdatedAt: at, IdempotencyKey: key,
	}
	t.Events = append(t.Events, sterad.Event{At: at, Status: t.Status, Step: t.Step})
	if err := db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{t},
		Idempotency: &sterad.IdempotencyRecord{Key: t.IdempotencyKey, Fingerprint: db.MAC([]byte(id)), TxnID: id, CreatedAt: at}}); err != nil {
		return err
	}
	step := func(st sterad.Status, s sterad.Step, note string, edit func()) error {
		at = at.Add(700*time.Millisecond + jitter())
		if edit != nil {
			edit()
		}
		t.Status, t.Step, t.UpdatedAt = st, s, at
		t.Events = append(t.Events, sterad.Event{At: at, Status: st, Step: s, Note: note})
		return db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{t}})
	}
	stan, err := db.NextSTAN(ctx, "FRONT001", at)
	if err != nil {
		return err
	}
	if err := step(sterad.StatusPending, sterad.StepReading, "", nil); err != nil {
		return err
	}
	if err := step(sterad.StatusPending, sterad.StepCardRead, "", func() {
		t.MaskedPAN, t.Brand, t.Entry, t.KSN = "411111******1111", sterad.BrandVisa, sterad.EntryChip, "FFFF9876543210E00001"
	}); err != nil {
		return err
	}
	if err := step(sterad.StatusPending, sterad.StepSent, "0200 sent", func() {
		t.MTI, t.STAN, t.Transmitted, t.Batch, t.Condition = sterad.MTIFinancial, stan, at.UTC().Truncate(time.Second), batch, "00"
	}); err != nil {
		return err
	}
	if err := step(sterad.StatusApproved, sterad.StepAnswered, "approved", func() {
		t.ResponseCode, t.AuthCode, t.RRN = "00", "A1B2C3", "512345678901"
	}); err != nil {
		return err
	}
	if err := step(sterad.StatusApproved, sterad.StepOutcome, "", nil); err != nil {
		return err
	}
	return step(sterad.StatusApproved, sterad.StepDone, "", func() { t.TerminalResult, t.Printed = "OK", true })
}

// BenchmarkStoreGrowth applies n sales as the gateway writes them (seven
// commits each, fsync on) and reports the store's growth per sale: the
// database's data (its high-water mark) and its file, which bbolt grows
// ahead in steps.
func BenchmarkStoreGrowth(b *testing.B) { benchmarkGrowth(b, func() saleStyle { return saleStyle{} }) }

// BenchmarkStoreGrowthRandomKeys is BenchmarkStoreGrowth with idempotency
// keys and references in no order (a UUID, a reservation number) and
// times as the clock gives them (nanoseconds, the hotel's zone): the
// idempotency keys' and references' pages are then filled the way of
// random inserts, about 70%, rather than filled up.
func BenchmarkStoreGrowthRandomKeys(b *testing.B) {
	benchmarkGrowth(b, func() saleStyle {
		return saleStyle{rng: rand.New(rand.NewPCG(1, 2)), zone: time.FixedZone("JST", 9*3600)}
	})
}

func benchmarkGrowth(b *testing.B, style func() saleStyle) {
	const n = 5000
	ctx := context.Background()
	noSync := testing.Short()
	for b.Loop() {
		o := offline.DefaultOptions()
		o.NoSync = noSync
		db, _ := open(b, o)
		batch, err := db.CurrentBatch(ctx)
		if err != nil {
			b.Fatal(err)
		}
		s0, err := db.Size()
		if err != nil {
			b.Fatal(err)
		}
		at, st := t0, style()
		for range n {
			if err := saleWritesStyled(ctx, db, at, batch.Number, st); err != nil {
				b.Fatal(err)
			}
			at = at.Add(47 * time.Second)
		}
		s1, err := db.Size()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(s1.Used-s0.Used)/n, "used-B/txn")
		b.ReportMetric(float64(s1.Total()-s0.Total())/n, "file-B/txn")
		b.ReportMetric(float64(s1.Free)/1e6, "free-MB")
		db.Close()
	}
}
