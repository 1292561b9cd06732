package offline

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"pgregory.net/rapid"

	"github.com/sterad/sterad"
)

var (
	recT0 = time.Date(2025, 3, 14, 10, 30, 0, 123456789, time.FixedZone("JST", 9*3600))
	tokyo = func() *time.Location {
		l, err := time.LoadLocation("Asia/Tokyo")
		if err != nil {
			return time.FixedZone("", 9*3600)
		}
		return l
	}()
)

// saleRecord is a keyed sale as the gateway leaves it: seven steps, three
// notes, clock times with nanoseconds in the hotel's zone, DE 7 in UTC.
func saleRecord() *sterad.Transaction {
	at := time.Date(2025, 3, 14, 10, 30, 0, 412345678, tokyo)
	t := &sterad.Transaction{
		ID: "01JPAZ8V1RKXJ9E6QYH3W0T2MD", Op: sterad.OpSale, Status: sterad.StatusApproved, Step: sterad.StepDone,
		ResponseCode: "00", AuthCode: "A1B2C3", RRN: "512345678901",
		Amount: sterad.NewAmount(12800, sterad.JPY), Currency: "JPY", MaskedPAN: "411111******1111",
		Brand: sterad.BrandVisa, Entry: sterad.EntryChip, KSN: "FFFF9876543210E00001",
		Terminal: "FRONT001", TerminalID: "FRONT001", Reference: "RSV-20250314-0042", Batch: 17,
		CreatedAt: at, MTI: sterad.MTIFinancial, STAN: 4711, Condition: "00",
		TerminalResult: "OK", Printed: true, IdempotencyKey: "pms-9f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b", Version: 7,
	}
	steps := []sterad.Step{sterad.StepCreated, sterad.StepReading, sterad.StepCardRead, sterad.StepSent,
		sterad.StepAnswered, sterad.StepOutcome, sterad.StepDone}
	notes := map[sterad.Step]string{sterad.StepSent: "0200 sent", sterad.StepAnswered: "approved", sterad.StepDone: "printed"}
	for i, s := range steps {
		st := sterad.StatusPending
		if i >= 4 {
			st = sterad.StatusApproved
		}
		e := at.Add(time.Duration(i)*731*time.Millisecond + time.Duration(i*i)*1234567)
		t.Events = append(t.Events, sterad.Event{At: e, Status: st, Step: s, Note: notes[s]})
		t.UpdatedAt = e
		if s == sterad.StepSent {
			t.Transmitted = e.UTC().Truncate(time.Second)
		}
	}
	return t
}

func roundTrip(t testing.TB, x *sterad.Transaction) *sterad.Transaction {
	t.Helper()
	enc := encodeTxn(x)
	got := new(sterad.Transaction)
	if err := decodeTxn([]byte(x.ID), enc, got); err != nil {
		t.Fatalf("decode of an encoded transaction: %v", err)
	}
	return got
}

// TestTxnRecordEveryField fills every field of sterad.Transaction (and of
// every struct it holds) with a value of its own, walking the type with
// reflect: a field added to the domain without a place in the encoding
// makes this test fail.
func TestTxnRecordEveryField(t *testing.T) {
	for _, mode := range []string{"names", "codes"} {
		t.Run(mode, func(t *testing.T) {
			var f filler
			f.codes = mode == "codes"
			x := new(sterad.Transaction)
			f.fill(reflect.ValueOf(x).Elem(), "Transaction")
			x.CreatedAt = recT0 // a base the relative times fit
			if zero := zeroLeaves(reflect.ValueOf(x).Elem(), "Transaction"); len(zero) > 0 {
				t.Fatalf("the filler left fields zero: %v", zero)
			}
			got := roundTrip(t, x)
			if d := diff(reflect.ValueOf(got).Elem(), reflect.ValueOf(x).Elem(), "Transaction"); len(d) > 0 {
				t.Errorf("decode(encode(t)) differs:\n%s", strings.Join(d, "\n"))
			}
			// Each field alone survives too (and nothing else appears).
			for _, path := range leafPaths(reflect.TypeOf(x).Elem(), "Transaction") {
				one := new(sterad.Transaction)
				one.ID = "X"
				copyLeaf(reflect.ValueOf(one).Elem(), reflect.ValueOf(x).Elem(), path[1:])
				got := roundTrip(t, one)
				if d := diff(reflect.ValueOf(got).Elem(), reflect.ValueOf(one).Elem(), "Transaction"); len(d) > 0 {
					t.Errorf("%s alone:\n%s", strings.Join(path, "."), strings.Join(d, "\n"))
				}
			}
		})
	}
}

// TestTxnRecordSale: a typical sale survives exactly, JSON sees no
// difference, and the record is a fraction of its JSON.
func TestTxnRecordSale(t *testing.T) {
	x := saleRecord()
	got := roundTrip(t, x)
	if d := diff(reflect.ValueOf(got).Elem(), reflect.ValueOf(x).Elem(), "Transaction"); len(d) > 0 {
		t.Errorf("decode(encode(sale)) differs:\n%s", strings.Join(d, "\n"))
	}
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(x)
	if !bytes.Equal(gj, wj) {
		t.Errorf("JSON of the decoded sale\n%s\nwant\n%s", gj, wj)
	}
	enc := encodeTxn(x)
	if len(enc) > 400 || len(enc)*3 > len(wj) {
		t.Errorf("a sale's record is %d bytes (JSON %d)", len(enc), len(wj))
	}
	t.Logf("sale record: %d bytes binary, %d bytes JSON", len(enc), len(wj))
}

// The header alone gives what the store needs without decoding.
func TestTxnRecordHeader(t *testing.T) {
	x := saleRecord()
	x.Original = "01JPAZ000000000000000ORIG0"
	x.Reference = strings.Repeat("R", 300) // a header longer than 127 bytes
	enc := encodeTxn(x)
	v, err := storedTxnVersion(enc)
	if err != nil || v != x.Version {
		t.Errorf("storedTxnVersion = %d, %v; want %d", v, err, x.Version)
	}
	k, err := storedKeys([]byte(x.ID), enc)
	if err != nil {
		t.Fatal(err)
	}
	if !k.CreatedAt.Equal(x.CreatedAt) || zoneOffset(k.CreatedAt) != zoneOffset(x.CreatedAt) {
		t.Errorf("storedKeys: created at %v, want %v", k.CreatedAt, x.CreatedAt)
	}
	want := txnKeys{ID: x.ID, Reference: x.Reference, Original: x.Original, Batch: x.Batch, Step: x.Step, Version: x.Version}
	if k.CreatedAt = (time.Time{}); k != want {
		t.Errorf("storedKeys = %+v; want %+v", k, want)
	}
	// The same from a JSON record.
	j, _ := json.Marshal(x)
	if v, err := storedTxnVersion(j); err != nil || v != x.Version {
		t.Errorf("storedTxnVersion(JSON) = %d, %v", v, err)
	}
	if k, err := storedKeys([]byte(x.ID), j); err != nil || k.Reference != x.Reference || k.Batch != x.Batch || k.Step != x.Step || !k.CreatedAt.Equal(x.CreatedAt) {
		t.Errorf("storedKeys(JSON) = %+v, %v", k, err)
	}
	// An unknown step travels by name in the header.
	x.Step = "future_step"
	if k, err := storedKeys([]byte(x.ID), encodeTxn(x)); err != nil || k.Step != "future_step" {
		t.Errorf("storedKeys with an unknown step = %+v, %v", k, err)
	}
}

// Old records: a transaction stored as JSON by an earlier release decodes
// as encoding/json decoded it.
func TestTxnRecordJSON(t *testing.T) {
	x := saleRecord()
	j, _ := json.Marshal(x)
	got := new(sterad.Transaction)
	if err := decodeTxn([]byte(x.ID), j, got); err != nil {
		t.Fatal(err)
	}
	want := new(sterad.Transaction)
	json.Unmarshal(j, want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("JSON record decoded as %+v, want %+v", got, want)
	}
}

// Times come back as encoding/json gave them back: the instant to the
// nanosecond and the zone offset; UTC for offset zero, the local zone when
// it has the offset, else a fixed zone.
func TestTxnRecordTimes(t *testing.T) {
	at := time.Date(2025, 7, 1, 9, 0, 0, 1, time.UTC)
	for _, c := range []struct {
		name    string
		created time.Time
		at      time.Time
	}{
		{"utc", at, at.Add(time.Hour)},
		{"local", at.Local(), at.Add(time.Second).Local()},
		{"tokyo", at.In(tokyo), at.Add(-time.Hour).In(tokyo)},
		{"mixed zones", at.In(tokyo), at.Add(time.Minute)},
		{"odd offset", at.In(time.FixedZone("X", 5*3600+1800+7)), at.In(time.FixedZone("Y", -3600))},
		{"far apart", at, time.Date(1800, 1, 1, 0, 0, 0, 5, time.UTC)},
		{"zero created", time.Time{}, at},
		{"monotonic", time.Now(), time.Now().Add(time.Nanosecond)},
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)},
		{"beyond json", time.Unix(math.MaxInt64/4, 999999999), time.Unix(-math.MaxInt64/4, 0)},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := &sterad.Transaction{ID: "T", CreatedAt: c.created, UpdatedAt: c.at, Transmitted: c.at.UTC(),
				ReversalTransmitted: c.at.Add(-time.Nanosecond), Events: []sterad.Event{{At: c.at}, {At: c.created}, {}}}
			got := roundTrip(t, x)
			if d := diff(reflect.ValueOf(got).Elem(), reflect.ValueOf(x).Elem(), "Transaction"); len(d) > 0 {
				t.Fatalf("%s", strings.Join(d, "\n"))
			}
			for i, pair := range [][2]time.Time{{got.CreatedAt, c.created}, {got.UpdatedAt, c.at}, {got.Events[0].At, c.at}} {
				if y := pair[1].Year(); y < 0 || y > 9999 || zoneOffset(pair[1])%60 != 0 {
					continue // JSON cannot say it (or keeps only the minutes of the offset)
				}
				var viaJSON time.Time
				b, _ := json.Marshal(pair[1])
				json.Unmarshal(b, &viaJSON)
				if !pair[0].IsZero() && !reflect.DeepEqual(pair[0], viaJSON) {
					t.Errorf("time %d = %#v, encoding/json gives %#v", i, pair[0], viaJSON)
				}
			}
		})
	}
}

// Amounts and decimals are kept exactly: coefficient, exponent, currency.
func TestTxnRecordAmounts(t *testing.T) {
	big, _ := decimal.NewFromString("123456789012345678901234567890.12345")
	for _, a := range []sterad.Amount{
		{},
		sterad.NewAmount(0, sterad.JPY),
		sterad.NewAmount(9_999_999, sterad.JPY),
		{Value: decimal.New(1200, -2), Currency: sterad.JPY},
		{Value: decimal.New(128, 2), Currency: sterad.JPY},
		{Value: decimal.New(-5, 0), Currency: sterad.JPY},
		{Value: decimal.New(math.MinInt64, -1000), Currency: sterad.Currency{Code: "USD", Number: "840", Exponent: 2}},
		{Value: decimal.New(math.MaxInt64, 1000)},
		{Value: big, Currency: sterad.Currency{Code: "JPY", Number: "", Exponent: 0}},
		{Value: big.Neg()},
		{Currency: sterad.JPY},
	} {
		x := &sterad.Transaction{ID: "A", Amount: a, Fee: a, Policy: &sterad.PolicySnapshot{FirstNight: a,
			Policy: sterad.CancellationPolicy{Rows: []sterad.FeeRow{{Percent: a.Value}}, NoShow: &sterad.NoShowFee{Percent: a.Value}}}}
		got := roundTrip(t, x)
		if d := diff(reflect.ValueOf(got).Elem(), reflect.ValueOf(x).Elem(), "Transaction"); len(d) > 0 {
			t.Errorf("amount %s %+v: %s", a.Value, a.Currency, strings.Join(d, "\n"))
		}
		if got.Amount.String() != a.String() {
			t.Errorf("amount %s reads back as %s", a, got.Amount)
		}
	}
	// The extremes of the exponent.
	for _, exp := range []int32{math.MinInt32, math.MaxInt32} {
		x := &sterad.Transaction{ID: "A", Amount: sterad.Amount{Value: decimal.New(math.MinInt64, exp)}}
		got := roundTrip(t, x)
		if got.Amount.Value.Exponent() != exp || got.Amount.Value.CoefficientInt64() != math.MinInt64 {
			t.Errorf("exponent %d: read back %d×10^%d", exp, got.Amount.Value.CoefficientInt64(), got.Amount.Value.Exponent())
		}
	}
}

// On a machine whose local zone is the hotel's, times come back in the
// local zone, as encoding/json gave them back.
func TestTxnRecordLocalZone(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	time.Local = tokyo
	at := time.Date(2025, 7, 1, 9, 0, 0, 1, tokyo)
	x := &sterad.Transaction{ID: "L", CreatedAt: at, UpdatedAt: at.Add(time.Second), Transmitted: at.UTC(),
		Events: []sterad.Event{{At: at.Add(time.Hour).In(time.FixedZone("JST", 9*3600))}}}
	got := roundTrip(t, x)
	for _, c := range []struct {
		got  time.Time
		want *time.Location
	}{{got.CreatedAt, time.Local}, {got.UpdatedAt, time.Local}, {got.Events[0].At, time.Local}, {got.Transmitted, time.UTC}} {
		if c.got.Location() != c.want {
			t.Errorf("%v is in %v, want %v", c.got, c.got.Location(), c.want)
		}
	}
	var viaJSON sterad.Transaction
	j, _ := json.Marshal(x)
	json.Unmarshal(j, &viaJSON)
	if !reflect.DeepEqual(got.CreatedAt, viaJSON.CreatedAt) || !reflect.DeepEqual(got.Events, viaJSON.Events) ||
		!reflect.DeepEqual(got.Transmitted, viaJSON.Transmitted) {
		t.Errorf("times differ from encoding/json's: %#v vs %#v", got.Events, viaJSON.Events)
	}
}

// TestRecordCodes pins the enumeration codes and the format bytes: they
// are on disk.
func TestRecordCodes(t *testing.T) {
	pin := map[string][]string{
		"op":       {"", "preauth", "incremental", "completion", "sale", "refund", "void", "cardcheck", "noshow", "cancellation", "deposit", "adjust"},
		"status":   {"", "pending", "approved", "declined", "stood_in", "reversed", "voided", "cancelled", "unknown"},
		"step":     {"", "created", "reading", "card_read", "sent", "answered", "queued", "reversal", "outcome", "done"},
		"brand":    {"", "visa", "mastercard", "jcb", "amex", "diners", "unionpay", "unknown"},
		"entry":    {"", "chip", "ctls", "swipe", "keyed", "token"},
		"mti":      {"", "0100", "0200", "0220", "0221", "0400", "0420", "0421", "0320"},
		"currency": {"", "JPY"},
		"queue":    {"", "reversal", "void", "advice", "request"},
	}
	tables := map[string][]string{"op": opCodes, "status": statusCodes, "step": stepCodes, "brand": brandCodes,
		"entry": entryCodes, "mti": mtiCodes, "currency": currencyCodes, "queue": queueCodes}
	for name, want := range pin {
		got := tables[name]
		if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
			t.Errorf("%s codes changed: %q, the stored codes are %q (append new values only)", name, got, want)
		}
	}
	// Every value the domain knows has a code.
	for _, op := range sterad.Ops {
		if codeOf(opCodes, string(op)) == 0 {
			t.Errorf("op %s has no code", op)
		}
	}
	for _, b := range append(sterad.Brands, sterad.BrandUnknown) {
		if codeOf(brandCodes, string(b)) == 0 {
			t.Errorf("brand %s has no code", b)
		}
	}
	if fmtTxn != 0xD4 || fmtIdem != 0xC9 || fmtQueue != 0xD1 || fmtJSON != '{' {
		t.Error("a format byte changed: records on disk carry them")
	}
}

// goldenSale is the record of a fixed sale as this encoding wrote it when
// it was made: later releases must read it the same.
const goldenSale = "d41d020e04b09a9cfd0c0000115253562d32303235303331342d30303432000a060800100118010a0a0880a8d6b907100118020a150880d0acf30e1001180322096361726420726561641004180122060880c801180128013080d4dbd20f8001028801ce49"

// TestTxnRecordGolden: a record written by the first release of the
// encoding still decodes to the same transaction.
func TestTxnRecordGolden(t *testing.T) {
	x := goldenTxn()
	enc := encodeTxn(x)
	if hex.EncodeToString(enc) != goldenSale {
		t.Logf("the encoding of the golden sale changed (fine if only new fields were added):\n%x", enc)
	}
	b, err := hex.DecodeString(goldenSale)
	if err != nil {
		t.Fatal(err)
	}
	got := new(sterad.Transaction)
	if err := decodeTxn([]byte(x.ID), b, got); err != nil {
		t.Fatal(err)
	}
	if d := diff(reflect.ValueOf(got).Elem(), reflect.ValueOf(x).Elem(), "Transaction"); len(d) > 0 {
		t.Errorf("the golden record reads as:\n%s", strings.Join(d, "\n"))
	}
}

func goldenTxn() *sterad.Transaction {
	at := time.Date(2025, 3, 14, 1, 30, 0, 0, time.UTC)
	return &sterad.Transaction{ID: "01GOLDEN", Op: sterad.OpSale, Status: sterad.StatusPending, Step: sterad.StepSent,
		Amount: sterad.NewAmount(12800, sterad.JPY), Currency: "JPY", Reference: "RSV-20250314-0042", Batch: 7, Version: 2,
		CreatedAt: at, UpdatedAt: at.Add(2100 * time.Millisecond), MTI: sterad.MTIFinancial, STAN: 4711,
		Events: []sterad.Event{{At: at, Status: sterad.StatusPending, Step: sterad.StepCreated},
			{At: at.Add(time.Second), Status: sterad.StatusPending, Step: sterad.StepReading},
			{At: at.Add(2 * time.Second), Status: sterad.StatusPending, Step: sterad.StepCardRead, Note: "card read"}}}
}

// Property: every transaction a generator can make survives, JSON sees
// no difference, and the header agrees with the record.
func TestTxnRecordProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		f := filler{rt: rt}
		x := new(sterad.Transaction)
		f.fill(reflect.ValueOf(x).Elem(), "Transaction")
		x.ID = rapid.StringMatching(`[0-9A-Z]{1,26}`).Draw(rt, "id")
		enc := encodeTxn(x)
		got := new(sterad.Transaction)
		if err := decodeTxn([]byte(x.ID), enc, got); err != nil {
			rt.Fatalf("decode: %v", err)
		}
		if d := diff(reflect.ValueOf(got).Elem(), reflect.ValueOf(x).Elem(), "Transaction"); len(d) > 0 {
			rt.Fatalf("decode(encode(t)) differs:\n%s", strings.Join(d, "\n"))
		}
		if txnTimesOK(x) {
			gj, err1 := json.Marshal(got)
			wj, err2 := json.Marshal(x)
			if err1 != nil || err2 != nil || !bytes.Equal(gj, wj) {
				rt.Fatalf("JSON differs (%v %v):\n%s\n%s", err1, err2, gj, wj)
			}
		}
		if v, err := storedTxnVersion(enc); err != nil || v != x.Version {
			rt.Fatalf("storedTxnVersion = %d, %v", v, err)
		}
		if !bytes.Equal(encodeTxn(got), enc) {
			rt.Fatalf("encode(decode(b)) != b")
		}
	})
}

// FuzzDecodeTransaction: decoding never panics; what it refuses it
// refuses with a clear error; what it accepts encodes and decodes to the
// same transaction, and the header reads agree with it.
func FuzzDecodeTransaction(f *testing.F) {
	sale := encodeTxn(saleRecord())
	f.Add(sale)
	f.Add(encodeTxn(goldenTxn()))
	var fl filler
	every := new(sterad.Transaction)
	fl.fill(reflect.ValueOf(every).Elem(), "Transaction")
	f.Add(encodeTxn(every))
	f.Add(sale[:len(sale)/2])
	f.Add(sale[:5])
	j, _ := json.Marshal(saleRecord())
	f.Add(j)
	f.Add([]byte{})
	f.Add([]byte{fmtTxn})
	f.Add([]byte{fmtIdem, 1, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		id := []byte("01FUZZ")
		got := new(sterad.Transaction)
		err := decodeTxn(id, data, got)
		ver, verr := storedTxnVersion(data)
		keys, kerr := storedKeys(id, data)
		if err != nil {
			checkDecodeError(t, data, err)
			return
		}
		if len(data) > 0 && data[0] == fmtJSON {
			return // encoding/json's business
		}
		if verr != nil || ver != got.Version {
			t.Fatalf("storedTxnVersion = %d, %v; the record says %d", ver, verr, got.Version)
		}
		if kerr != nil || keys.Reference != got.Reference || keys.Original != got.Original || keys.Batch != got.Batch ||
			keys.Step != got.Step || !keys.CreatedAt.Equal(got.CreatedAt) {
			t.Fatalf("storedKeys = %+v, %v; the record says %+v", keys, kerr, got)
		}
		enc := encodeTxn(got)
		again := new(sterad.Transaction)
		if err := decodeTxn(id, enc, again); err != nil {
			t.Fatalf("decode of a re-encoded record: %v", err)
		}
		if d := diff(reflect.ValueOf(again).Elem(), reflect.ValueOf(got).Elem(), "Transaction"); len(d) > 0 {
			t.Fatalf("decode(encode(decode(b))) differs:\n%s", strings.Join(d, "\n"))
		}
	})
}

// checkDecodeError: a binary record's error is errMalformed and quotes
// none of its bytes.
func checkDecodeError(t *testing.T, data []byte, err error) {
	t.Helper()
	if len(data) > 0 && data[0] == fmtJSON {
		return
	}
	if !errors.Is(err, errMalformed) {
		t.Fatalf("error %v is not errMalformed", err)
	}
	if strings.Contains(err.Error(), "%!") {
		t.Fatalf("badly formatted error: %v", err)
	}
}

func FuzzDecodeIdempotency(f *testing.F) {
	r := &sterad.IdempotencyRecord{Key: "k", Fingerprint: strings.Repeat("ab", 32), TxnID: "01TXN", CreatedAt: recT0}
	f.Add(encodeIdem(r))
	r.Fingerprint = "not hex"
	f.Add(encodeIdem(r))
	j, _ := json.Marshal(r)
	f.Add(j)
	f.Add([]byte{fmtIdem, 0x1a, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeIdem([]byte("k"), data)
		if err != nil {
			checkDecodeError(t, data, err)
			return
		}
		if len(data) > 0 && data[0] == fmtJSON {
			return
		}
		again, err := decodeIdem([]byte("k"), encodeIdem(got))
		if err != nil {
			t.Fatalf("decode of a re-encoded record: %v", err)
		}
		if d := diff(reflect.ValueOf(again).Elem(), reflect.ValueOf(got).Elem(), "IdempotencyRecord"); len(d) > 0 {
			t.Fatalf("differs:\n%s", strings.Join(d, "\n"))
		}
	})
}

func FuzzDecodeQueueItem(f *testing.F) {
	it := sterad.QueueItem{Seq: 7, TxnID: "01TXN", Kind: sterad.QueueAdvice, CreatedAt: recT0, Attempts: 3,
		LastAttempt: recT0.Add(time.Minute), LastError: "timeout", Parked: true, Block: &sterad.EncryptedBlock{KSN: "K", Data: "D"}}
	f.Add(encodeQueueItem(&it))
	j, _ := json.Marshal(it)
	f.Add(j)
	f.Add([]byte{fmtQueue, 0x30, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeQueueItem(data)
		if err != nil {
			checkDecodeError(t, data, err)
			return
		}
		if len(data) > 0 && data[0] == fmtJSON {
			return
		}
		again, err := decodeQueueItem(encodeQueueItem(&got))
		if err != nil {
			t.Fatalf("decode of a re-encoded item: %v", err)
		}
		if d := diff(reflect.ValueOf(again), reflect.ValueOf(got), "QueueItem"); len(d) > 0 {
			t.Fatalf("differs:\n%s", strings.Join(d, "\n"))
		}
	})
}

// Idempotency records and queue items: every field survives.
func TestSmallRecordsEveryField(t *testing.T) {
	for _, mode := range []string{"names", "codes"} {
		f := filler{codes: mode == "codes"}
		r := new(sterad.IdempotencyRecord)
		f.fill(reflect.ValueOf(r).Elem(), "IdempotencyRecord")
		if z := zeroLeaves(reflect.ValueOf(r).Elem(), "IdempotencyRecord"); len(z) > 0 {
			t.Fatalf("zero: %v", z)
		}
		got, err := decodeIdem([]byte(r.Key), encodeIdem(r))
		if err != nil {
			t.Fatal(err)
		}
		if d := diff(reflect.ValueOf(got).Elem(), reflect.ValueOf(r).Elem(), "IdempotencyRecord"); len(d) > 0 {
			t.Errorf("idempotency record:\n%s", strings.Join(d, "\n"))
		}
		r.Fingerprint = hex.EncodeToString([]byte("a MAC of thirty-two bytes, say.."))
		enc := encodeIdem(r)
		if got, err := decodeIdem([]byte(r.Key), enc); err != nil || got.Fingerprint != r.Fingerprint {
			t.Errorf("hex fingerprint: %v %+v", err, got)
		}
		if bytes.Contains(enc, []byte(r.Fingerprint)) {
			t.Error("a hex fingerprint is stored as hex")
		}

		it := new(sterad.QueueItem)
		f.fill(reflect.ValueOf(it).Elem(), "QueueItem")
		if z := zeroLeaves(reflect.ValueOf(it).Elem(), "QueueItem"); len(z) > 0 {
			t.Fatalf("zero: %v", z)
		}
		gotIt, err := decodeQueueItem(encodeQueueItem(it))
		if err != nil {
			t.Fatal(err)
		}
		if d := diff(reflect.ValueOf(gotIt), reflect.ValueOf(*it), "QueueItem"); len(d) > 0 {
			t.Errorf("queue item:\n%s", strings.Join(d, "\n"))
		}
	}
}

// Malformed records are refused with an error that says what is wrong,
// never with a panic or a half-read value.
func TestTxnRecordMalformed(t *testing.T) {
	sale := encodeTxn(saleRecord())
	body, _ := readTxnHeader(sale)
	for _, c := range []struct {
		name string
		rec  []byte
		want string
	}{
		{"empty", nil, "empty record"},
		{"newer format", []byte{0xD5, 1, 2}, "unknown format byte 0xd5"},
		{"truncated header", sale[:3], "header"},
		{"header longer than the record", []byte{fmtTxn, 0x7f, 0}, "header longer than the record"},
		{"truncated field", sale[:len(sale)-1], "field"},
		{"unknown op code", append(append(bytes.Clone(sale[:body.body]), 0x10, 0x7f), sale[body.body:]...), "field 2: unknown code 127"},
		{"wrong wire type", append(append(bytes.Clone(sale[:body.body]), 0x15, 1, 2, 3, 4), sale[body.body:]...), "field 2: wire type 5"},
		{"group", append(bytes.Clone(sale), 0x0b), "wire type 3"},
		{"bad nanoseconds", append(bytes.Clone(sale), 0x32, 0x08, 0x08, 0x02, 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f), "nanoseconds"},
		{"bad coefficient", append(bytes.Clone(sale), 0x22, 0x03, 0x0a, 0x01, 'x'), "coefficient"},
		{"varint too long", append(bytes.Clone(sale), 0x88, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02), "field 17: variable length integer overflow"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := new(sterad.Transaction)
			err := decodeTxn([]byte("01X"), c.rec, got)
			if err == nil || !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("decode = %v, want errMalformed saying %q", err, c.want)
			}
			if _, err := storedKeys([]byte("01X"), c.rec); err == nil && c.name != "truncated field" && !strings.Contains(c.name, "code") &&
				!strings.Contains(c.name, "wire") && c.name != "group" && !strings.Contains(c.name, "bad") && !strings.Contains(c.name, "varint") {
				t.Errorf("storedKeys accepted it")
			}
		})
	}
}

// Messages and a header longer than a one-byte length.
func TestTxnRecordLongMessages(t *testing.T) {
	for _, n := range []int{127, 128, 300, 20000} {
		long := strings.Repeat("x", n)
		x := saleRecord()
		x.Reference, x.Events[1].Note = long, long
		x.Policy = &sterad.PolicySnapshot{Policy: sterad.CancellationPolicy{Version: long, NoShow: &sterad.NoShowFee{Of: sterad.FeeBasis(long)}}}
		for range 30 {
			x.Policy.Policy.Rows = append(x.Policy.Policy.Rows, sterad.FeeRow{DaysBefore: n, Percent: decimal.New(int64(n), -1), Of: "first_night"})
		}
		got := roundTrip(t, x)
		if d := diff(reflect.ValueOf(got).Elem(), reflect.ValueOf(x).Elem(), "Transaction"); len(d) > 0 {
			t.Errorf("%d bytes: %s", n, strings.Join(d, "\n"))
		}
	}
}

// An unknown field (a newer release's) is skipped.
func TestTxnRecordSkipsUnknownFields(t *testing.T) {
	x := saleRecord()
	enc := append(encodeTxn(x), 0xf8, 0x3f, 0x05, 0xfa, 0x3f, 0x02, 'h', 'i') // fields 1023 (varint) and 1023 (bytes)
	got := new(sterad.Transaction)
	if err := decodeTxn([]byte(x.ID), enc, got); err != nil {
		t.Fatal(err)
	}
	if d := diff(reflect.ValueOf(got).Elem(), reflect.ValueOf(x).Elem(), "Transaction"); len(d) > 0 {
		t.Errorf("%s", strings.Join(d, "\n"))
	}
}

// Reading a sale allocates little: the transaction, one string for every
// string field, the events, the amount.
func TestTxnRecordDecodeAllocs(t *testing.T) {
	x := saleRecord()
	enc := encodeTxn(x)
	id := []byte(x.ID)
	n := testing.AllocsPerRun(100, func() {
		var got sterad.Transaction
		if err := decodeTxn(id, enc, &got); err != nil {
			t.Fatal(err)
		}
	})
	if n > 6 {
		t.Errorf("decoding a sale allocates %.0f times, want at most 6", n)
	}
}

// filler fills values field by field: distinct non-zero values (a
// counter), or random ones (possibly zero) when rt is set.
type filler struct {
	n     int
	codes bool // use known enumeration values
	rt    *rapid.T
}

var (
	timeType    = reflect.TypeFor[time.Time]()
	decimalType = reflect.TypeFor[decimal.Decimal]()
	enumValues  = map[reflect.Type][]string{
		reflect.TypeFor[sterad.Op]():        opCodes[1:],
		reflect.TypeFor[sterad.Status]():    statusCodes[1:],
		reflect.TypeFor[sterad.Step]():      stepCodes[1:],
		reflect.TypeFor[sterad.Brand]():     brandCodes[1:],
		reflect.TypeFor[sterad.EntryMode](): entryCodes[1:],
		reflect.TypeFor[sterad.MTI]():       mtiCodes[1:],
		reflect.TypeFor[sterad.QueueKind](): queueCodes[1:],
	}
	zones = []*time.Location{time.UTC, time.Local, tokyo, time.FixedZone("", -5*3600), time.FixedZone("odd", 5*3600+1800+59)}
)

func (f *filler) next() int { f.n++; return f.n }

func (f *filler) fill(v reflect.Value, path string) {
	if f.rt != nil && rapid.IntRange(0, 4).Draw(f.rt, path+"?") == 0 {
		return // left zero
	}
	switch v.Type() {
	case timeType:
		v.Set(reflect.ValueOf(f.time(path)))
		return
	case decimalType:
		v.Set(reflect.ValueOf(f.decimal(path)))
		return
	}
	if vals, ok := enumValues[v.Type()]; ok && (f.codes || f.rt != nil && rapid.Bool().Draw(f.rt, path+" code")) {
		i := f.next()
		if f.rt != nil {
			i = rapid.IntRange(0, len(vals)-1).Draw(f.rt, path)
		}
		v.SetString(vals[i%len(vals)])
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				f.fill(v.Field(i), path+"."+v.Type().Field(i).Name)
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		f.fill(v.Elem(), path)
	case reflect.Slice:
		n := 3
		if f.rt != nil {
			n = rapid.IntRange(0, 4).Draw(f.rt, path+" len")
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			f.fill(s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.String:
		s := fmt.Sprintf("%s-%d", path[strings.LastIndexByte(path, '.')+1:], f.next())
		if f.rt != nil {
			s = rapid.String().Draw(f.rt, path)
		}
		v.SetString(s)
	case reflect.Bool:
		v.SetBool(f.rt == nil || rapid.Bool().Draw(f.rt, path))
	case reflect.Int, reflect.Int32, reflect.Int64:
		n := int64(f.next())
		if f.rt != nil {
			// int32: a currency's exponent, which Amount.String (JSON)
			// takes as the number of digits to write.
			n = rapid.Int64Range(-40, 40).Draw(f.rt, path)
			if v.Kind() == reflect.Int64 || v.Kind() == reflect.Int {
				n = rapid.Int64().Draw(f.rt, path)
			}
		}
		v.SetInt(n)
	case reflect.Uint64:
		n := uint64(f.next())
		if f.rt != nil {
			n = rapid.Uint64().Draw(f.rt, path)
		}
		v.SetUint(n)
	default:
		panic(fmt.Sprintf("filler: %s has kind %s: teach the filler (and the encoding) about it", path, v.Kind()))
	}
}

func (f *filler) time(path string) time.Time {
	if f.rt == nil {
		i := f.next()
		return recT0.Add(time.Duration(i)*time.Second + time.Duration(i)).In(zones[i%len(zones)])
	}
	sec := rapid.OneOf(rapid.Int64Range(-1e10, 1e10), rapid.Int64Range(1.7e9, 1.8e9), rapid.Int64Range(-1<<50, 1<<50)).Draw(f.rt, path+" s")
	ns := rapid.Int64Range(0, 999999999).Draw(f.rt, path+" ns")
	z := zones[rapid.IntRange(0, len(zones)-1).Draw(f.rt, path+" zone")]
	return time.Unix(sec, ns).In(z)
}

func (f *filler) decimal(path string) decimal.Decimal {
	if f.rt == nil {
		return decimal.New(int64(f.next())*100+7, -2)
	}
	exp := rapid.Int32Range(-30, 30).Draw(f.rt, path+" exp")
	if rapid.Bool().Draw(f.rt, path+" big") {
		d, _ := decimal.NewFromString(rapid.StringMatching(`-?[1-9][0-9]{18,40}`).Draw(f.rt, path))
		return decimal.NewFromBigInt(d.BigInt(), exp)
	}
	return decimal.New(rapid.Int64().Draw(f.rt, path), exp)
}

// zeroLeaves lists the fields under v that hold their zero value.
func zeroLeaves(v reflect.Value, path string) []string {
	switch {
	case v.Type() == timeType || v.Type() == decimalType:
		if v.IsZero() || v.Type() == decimalType && v.Interface().(decimal.Decimal).IsZero() {
			return []string{path}
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Struct:
		var out []string
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				out = append(out, zeroLeaves(v.Field(i), path+"."+v.Type().Field(i).Name)...)
			}
		}
		return out
	case reflect.Pointer:
		if v.IsNil() {
			return []string{path}
		}
		return zeroLeaves(v.Elem(), path)
	case reflect.Slice:
		if v.Len() == 0 {
			return []string{path}
		}
		var out []string
		for i := range v.Len() {
			out = append(out, zeroLeaves(v.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return out
	}
	if v.IsZero() {
		return []string{path}
	}
	return nil
}

// leafPaths lists the paths of the fields of t down to the leaves (time,
// decimal, enumerations and plain kinds), through pointers, not slices.
func leafPaths(t reflect.Type, path string) [][]string {
	if t == timeType || t == decimalType || t.Kind() != reflect.Struct && t.Kind() != reflect.Pointer {
		return [][]string{{path}}
	}
	if t.Kind() == reflect.Pointer {
		return leafPaths(t.Elem(), path)
	}
	var out [][]string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		for _, p := range leafPaths(f.Type, f.Name) {
			out = append(out, append([]string{path}, p...))
		}
	}
	return out
}

// copyLeaf copies the field at path from src to dst, allocating the
// pointers on the way.
func copyLeaf(dst, src reflect.Value, path []string) {
	for _, name := range path {
		if dst.Kind() == reflect.Pointer {
			if dst.IsNil() {
				dst.Set(reflect.New(dst.Type().Elem()))
			}
			dst, src = dst.Elem(), src.Elem()
		}
		dst, src = dst.FieldByName(name), src.FieldByName(name)
	}
	dst.Set(src)
}

// diff compares what the store keeps: times by instant and zone offset
// (the zero instant in any zone is the zero time), decimals by value and
// exponent, nil and empty slices alike; everything else exactly.
func diff(got, want reflect.Value, path string) []string {
	bad := func() []string {
		return []string{fmt.Sprintf("%s = %#v, want %#v", path, got.Interface(), want.Interface())}
	}
	switch got.Type() {
	case timeType:
		g, w := got.Interface().(time.Time), want.Interface().(time.Time)
		if g.IsZero() && w.IsZero() {
			return nil
		}
		if !g.Equal(w) || zoneOffset(g) != zoneOffset(w) {
			return bad()
		}
		return nil
	case decimalType:
		g, w := got.Interface().(decimal.Decimal), want.Interface().(decimal.Decimal)
		if g.Cmp(w) != 0 || g.Exponent() != w.Exponent() && !(g.IsZero() && w.IsZero()) {
			return bad()
		}
		return nil
	}
	switch got.Kind() {
	case reflect.Struct:
		var out []string
		for i := range got.NumField() {
			if got.Type().Field(i).IsExported() {
				out = append(out, diff(got.Field(i), want.Field(i), path+"."+got.Type().Field(i).Name)...)
			}
		}
		return out
	case reflect.Pointer:
		if got.IsNil() || want.IsNil() {
			if got.IsNil() != want.IsNil() {
				return bad()
			}
			return nil
		}
		return diff(got.Elem(), want.Elem(), path)
	case reflect.Slice:
		if got.Len() != want.Len() {
			return bad()
		}
		var out []string
		for i := range got.Len() {
			out = append(out, diff(got.Index(i), want.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return out
	}
	if !reflect.DeepEqual(got.Interface(), want.Interface()) {
		return bad()
	}
	return nil
}

// BenchmarkTxnRecord compares the binary encoding of a typical sale (its
// final record: seven events) with the JSON that earlier releases
// stored: encoding (each write), decoding (each read), and what
// validate and putTxn read of the stored record at each write.
func BenchmarkTxnRecord(b *testing.B) {
	x := saleRecord()
	id := []byte(x.ID)
	enc := encodeTxn(x)
	js, _ := json.Marshal(x)
	b.Run("encode/binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			encodeTxn(x)
		}
		b.ReportMetric(float64(len(enc)), "record-B")
	})
	b.Run("encode/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(x)
		}
		b.ReportMetric(float64(len(js)), "record-B")
	})
	b.Run("decode/binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var t sterad.Transaction
			if err := decodeTxn(id, enc, &t); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var t sterad.Transaction
			if err := json.Unmarshal(js, &t); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("header/binary", func(b *testing.B) { // validate's version and putTxn's index keys
		b.ReportAllocs()
		for b.Loop() {
			if _, err := storedTxnVersion(enc); err != nil {
				b.Fatal(err)
			}
			if _, err := storedKeys(id, enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("header/json", func(b *testing.B) { // what validate and putTxn decoded before
		b.ReportAllocs()
		for b.Loop() {
			var k1, k2 txnKeys
			if err := json.Unmarshal(js, &k1); err != nil {
				b.Fatal(err)
			}
			if err := json.Unmarshal(js, &k2); err != nil {
				b.Fatal(err)
			}
		}
	})
}
