package offline_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/internal/testutil"
	"github.com/sterad/sterad/offline"
)

func reservation(ref string) *sterad.Reservation {
	return &sterad.Reservation{
		Reference: ref, State: sterad.ReservationGuaranteed, MaskedPAN: "411111******1111", Brand: sterad.BrandVisa,
		Stay:  sterad.Stay{CheckIn: sterad.Date{Year: 2025, Month: 3, Day: 20}, CheckOut: sterad.Date{Year: 2025, Month: 3, Day: 22}},
		Token: "TK00000000000042", CheckTxn: newID(), CardKept: true, RetainUntil: t0.AddDate(0, 0, 14),
		CreatedAt: t0, UpdatedAt: t0,
	}
}

// A reservation is written with its vault entry and card in one Change,
// read back as stored, and kept across a restart.
func TestReservationRoundTrip(t *testing.T) {
	ctx := context.Background()
	db, dir := open(t, testOptions())
	if _, err := db.Reservation(ctx, "RSV-1"); !errors.Is(err, sterad.ErrNotFound) {
		t.Fatalf("Reservation(missing) = %v, want ErrNotFound", err)
	}
	r1, r2 := reservation("RSV-1"), reservation("RSV-0")
	apply(t, db, sterad.Change{
		SealCards:       []sterad.SealCard{{Owner: sterad.VaultOwner("RSV-1"), Card: testCard("4111111111111111")}},
		PutVault:        []*sterad.VaultEntry{{Reference: "RSV-1", MaskedPAN: r1.MaskedPAN, CreatedAt: t0}},
		PutReservations: []*sterad.Reservation{r1, r2},
	})
	if r1.Version != 1 || r2.Version != 1 {
		t.Fatalf("versions after the first write: %d %d, want 1", r1.Version, r2.Version)
	}
	db.Close()
	db = reopen(t, dir, testOptions())
	got, err := db.Reservation(ctx, "RSV-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || got.Stay != r1.Stay || got.Token != r1.Token || !got.CardKept || got.State != sterad.ReservationGuaranteed ||
		!got.RetainUntil.Equal(r1.RetainUntil) || got.CheckTxn != r1.CheckTxn {
		t.Fatalf("stored: %+v, want %+v", got, r1)
	}
	all, err := db.Reservations(ctx)
	if err != nil || len(all) != 2 || all[0].Reference != "RSV-0" || all[1].Reference != "RSV-1" {
		t.Fatalf("Reservations: %v %+v", err, all)
	}
	// The next write starts from the stored copy.
	got.State, got.Charges = sterad.ReservationCharged, []string{"T1"}
	apply(t, db, sterad.Change{PutReservations: []*sterad.Reservation{got}})
	if again, _ := db.Reservation(ctx, "RSV-1"); again.Version != 2 || again.State != sterad.ReservationCharged || len(again.Charges) != 1 {
		t.Fatalf("after the second write: %+v", again)
	}
}

// A stale copy never overwrites a newer one: the whole Change is refused
// and nothing of it is written.
func TestReservationStaleCopyRefused(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	apply(t, db, sterad.Change{PutReservations: []*sterad.Reservation{reservation("RSV-1")}})
	a, _ := db.Reservation(ctx, "RSV-1")
	b, _ := db.Reservation(ctx, "RSV-1")
	a.State = sterad.ReservationReleased
	apply(t, db, sterad.Change{PutReservations: []*sterad.Reservation{a}})

	id := newID()
	b.State = sterad.ReservationCharged
	err := db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{txn(id, t0)}, DeleteVault: []string{"RSV-1"}, PutReservations: []*sterad.Reservation{b}})
	if sterad.ErrorKind(err) != sterad.EConflict || !errors.Is(err, sterad.ErrStale) {
		t.Fatalf("stale copy: %v", err)
	}
	if got, _ := db.Reservation(ctx, "RSV-1"); got.State != sterad.ReservationReleased || got.Version != 2 {
		t.Fatalf("the stale copy overwrote the stored one: %+v", got)
	}
	if _, err := db.Transaction(ctx, id); !errors.Is(err, sterad.ErrNotFound) {
		t.Fatalf("the refused Change wrote its transaction: %v", err)
	}
	// A copy that claims to be stored when none is: refused too.
	ghost := reservation("RSV-GHOST")
	ghost.Version = 3
	if err := db.Apply(ctx, sterad.Change{PutReservations: []*sterad.Reservation{ghost}}); !errors.Is(err, sterad.ErrStale) {
		t.Fatalf("copy of a reservation never stored: %v", err)
	}
	// The same reservation twice in one Change is malformed.
	x := reservation("RSV-2")
	if err := db.Apply(ctx, sterad.Change{PutReservations: []*sterad.Reservation{x, x}}); sterad.ErrorKind(err) != sterad.EInvalid {
		t.Fatalf("twice in one Change: %v", err)
	}
	if err := db.Apply(ctx, sterad.Change{PutReservations: []*sterad.Reservation{{}}}); sterad.ErrorKind(err) != sterad.EInvalid {
		t.Fatalf("no reference: %v", err)
	}
}

// Two writers of one version in the same group commit: the first wins,
// the second is refused as stale (it was validated against the first).
func TestReservationStaleInOneGroup(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	apply(t, db, sterad.Change{PutReservations: []*sterad.Reservation{reservation("RSV-1")}})
	entered, release := holdCommitter(db)
	defer release()
	blocked := make(chan error, 1)
	go func() { blocked <- db.Apply(ctx, sterad.Change{Put: []*sterad.Transaction{txn(newID(), t0)}}) }()
	<-entered

	errs := make([]chan error, 2)
	for i, state := range []sterad.ReservationState{sterad.ReservationCharged, sterad.ReservationReleased} {
		r, _ := db.Reservation(ctx, "RSV-1")
		r.State = state
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- db.Apply(ctx, sterad.Change{PutReservations: []*sterad.Reservation{r}}) }()
		testutil.Eventually(t, "the change to queue", func() bool { return offline.Pending(db) == i+1 })
	}
	release()
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	first, second := <-errs[0], <-errs[1]
	if first != nil || !errors.Is(second, sterad.ErrStale) {
		t.Fatalf("first %v, second %v", first, second)
	}
	if got, _ := db.Reservation(ctx, "RSV-1"); got.State != sterad.ReservationCharged || got.Version != 2 {
		t.Fatalf("stored: %+v", got)
	}
}
