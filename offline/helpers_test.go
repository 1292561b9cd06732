package offline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/sterad/sterad"
	"github.com/sterad/sterad/offline"
)

var t0 = time.Date(2025, 3, 14, 1, 30, 0, 0, time.UTC)

// open opens a store in a new temporary directory and closes it at the end
// of the test.
func open(t testing.TB, opts offline.Options) (*offline.DB, string) {
	t.Helper()
	dir := t.TempDir()
	return reopen(t, dir, opts), dir
}

// testKEK is the key-encryption key of the tests' stores.
var testKEK = mustKEK(bytes.Repeat([]byte{0x5a}, offline.KEKSize))

func mustKEK(b []byte) *offline.KEK {
	k, err := offline.NewKEK(b)
	if err != nil {
		panic(err)
	}
	return k
}

// reopen opens the store in dir, under testKEK unless opts names KEKs.
func reopen(t testing.TB, dir string, opts offline.Options) *offline.DB {
	t.Helper()
	if len(opts.KEKs) == 0 {
		opts.KEKs = []*offline.KEK{testKEK}
	}
	db, err := offline.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// testOptions are the defaults with a fake clock. fsync stays on: tests
// exercise the real write path.
func testOptions() offline.Options {
	o := offline.DefaultOptions()
	o.Clock = sterad.NewFakeClock(t0)
	// The tests count key slots and their syncs exactly: keys written
	// ahead have their own tests (keypool_test.go).
	o.KeyPool = 0
	return o
}

func apply(t testing.TB, db *offline.DB, c sterad.Change) {
	t.Helper()
	if err := db.Apply(context.Background(), c); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// txn returns a realistic pre-authorization.
func txn(id string, created time.Time) *sterad.Transaction {
	return &sterad.Transaction{
		ID:         id,
		Op:         sterad.OpPreauth,
		Status:     sterad.StatusPending,
		Step:       sterad.StepSent,
		Amount:     sterad.NewAmount(38500, sterad.JPY),
		Currency:   "JPY",
		MaskedPAN:  "411111******1111",
		Brand:      sterad.BrandVisa,
		Entry:      sterad.EntryChip,
		Terminal:   "front-1",
		TerminalID: "TRM00001",
		Reference:  "RSV-" + id,
		Stay: &sterad.Stay{
			CheckIn:  sterad.Date{Year: 2025, Month: 3, Day: 14},
			CheckOut: sterad.Date{Year: 2025, Month: 3, Day: 16},
		},
		Batch:          1,
		CreatedAt:      created,
		UpdatedAt:      created,
		MTI:            sterad.MTIAuthorization,
		STAN:           123,
		Transmitted:    created.UTC().Truncate(time.Second),
		HasCard:        true,
		IdempotencyKey: "idem-" + id,
		Events: []sterad.Event{
			{At: created, Status: sterad.StatusPending, Step: sterad.StepCreated},
			{At: created, Status: sterad.StatusPending, Step: sterad.StepCardRead},
			{At: created, Status: sterad.StatusPending, Step: sterad.StepSent, Note: "0100 sent"},
		},
	}
}

func newID() string { return ulid.Make().String() }

// jsonEqual compares values by their JSON encoding: what the store keeps.
func jsonEqual(t testing.TB, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("got  %s\nwant %s", g, w)
	}
}

func ids(ts []*sterad.Transaction) string {
	var s []string
	for _, t := range ts {
		s = append(s, t.ID)
	}
	return strings.Join(s, ",")
}

// testPAN returns a random Luhn-valid 16-digit Visa number, so that a
// match on disk cannot be a coincidence with fixed test data.
func testPAN() string {
	digits := "4"
	for len(digits) < 15 {
		digits += fmt.Sprint(rand.IntN(10))
	}
	for c := '0'; c <= '9'; c++ {
		if sterad.Luhn(digits + string(c)) {
			return digits + string(c)
		}
	}
	panic("unreachable")
}

func testCard(pan string) *sterad.Card {
	return &sterad.Card{
		PAN:    sterad.PAN(pan),
		Expiry: sterad.Expiry{Year: 2028, Month: 11},
		Entry:  sterad.EntryChip,
		Brand:  sterad.BrandVisa,
		Track2: sterad.Sensitive(pan + "=28112011234567890"),
		ICC:    sterad.Sensitive{0x9f, 0x26, 0x08, 0x01, 0x02},
	}
}

// isKind reports whether err is an *sterad.Error of the kind and code.
func isKind(err error, kind, code string) bool {
	return sterad.ErrorKind(err) == kind && sterad.ErrorCode(err) == code
}
