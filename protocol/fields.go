package protocol

import (
	"errors"
	"strconv"
	"strings"

	"github.com/sterad/sterad"
)

// dataElements describes every data element of docs/acquirer-protocol.md §3, in
// ascending order: its number, its layout on the wire, its name, and how it
// moves between a HostMessage and the wire. Pack and Unpack are loops over
// it, and Spec is derived from it: adding a field is one line here.
var dataElements = []dataElement{
	{2, llvar(digitChars, 19), "Primary Account Number", codec{put: pan, get: setPAN}},
	{3, n(6), "Processing Code", str(func(m *hostMsg) *string { return &m.Processing })},
	{4, num(12), "Transaction Amount", codec{put: amount, get: setAmount}},
	{7, n(10), "Transmission Date & Time", codec{put: transmitted, get: setTransmitted}},
	{11, num(6), "Systems Trace Audit Number (STAN)", codec{put: stan, get: setSTAN}},
	{12, n(6), "Local Transaction Time", codec{put: localTime, get: setLocalTime, with: localTimeDEs}},
	{13, n(4), "Local Transaction Date", codec{put: localDate, get: readWithDE12, with: localTimeDEs}},
	{14, n(4), "Expiration Date", codec{put: expiry, get: setExpiry}},
	{18, n(4), "Merchant Type", str(func(m *hostMsg) *string { return &m.MCC })},
	{22, n(3), "Point of Sale (POS) Entry Mode", codec{put: entryMode, get: setEntryMode}},
	{25, n(2), "Point of Service Condition Code", str(func(m *hostMsg) *string { return &m.Condition })},
	{35, llvar(track2Chars, 37), "Track 2 Data", sensitive(func(m *hostMsg) *sterad.Sensitive { return &m.Track2 })},
	{37, ans(12), "Retrieval Reference Number", str(func(m *hostMsg) *string { return &m.RRN })},
	{38, ans(6), "Authorization Identification Response", str(func(m *hostMsg) *string { return &m.AuthCode })},
	{39, an(2), "Response Code", str(func(m *hostMsg) *string { return &m.ResponseCode })},
	{41, ans(8), "Card Acceptor Terminal Identification", str(func(m *hostMsg) *string { return &m.TerminalID })},
	{42, ans(15), "Card Acceptor Identification Code", str(func(m *hostMsg) *string { return &m.MerchantID })},
	{48, lllvar(asciiChars, 999), "Additional Data - Private", codec{put: encodeDE48, get: decodeDE48}},
	{49, n(3), "Transaction Currency Code", codec{put: currency, get: setCurrency}},
	{55, lllvar(rawBytes, 255), "ICC Data", sensitive(func(m *hostMsg) *sterad.Sensitive { return &m.ICC })},
	{60, lllvar(digitChars, 6), "Batch Number", codec{put: batch, get: setBatch}},
	{70, n(3), "Network Management Information Code", str(func(m *hostMsg) *string { return &m.NetworkCode })},
	{74, num(10), "Credits, Number", total(func(t *sterad.Totals) *int64 { return &t.CreditCount })},
	{76, num(10), "Debits, Number", total(func(t *sterad.Totals) *int64 { return &t.DebitCount })},
	{86, num(16), "Credits, Amount", total(func(t *sterad.Totals) *int64 { return &t.CreditAmount })},
	{88, num(16), "Debits, Amount", total(func(t *sterad.Totals) *int64 { return &t.DebitAmount })},
	{90, n(42), "Original Data Elements", codec{put: original, get: setOriginal}},
	{97, an(17), "Amount, Net Settlement", codec{put: netSettlement, get: checkNetSettlement, with: totalsDEs}},
}

// tags describes every DE 48 tag of docs/acquirer-protocol.md §4, in the order they
// are written. Unknown tags are skipped when reading.
var tags = []tag{
	{TagReference, 1, 25, printChars, str(func(m *hostMsg) *string { return &m.Reference })},
	{TagLodging, 16, 16, digitChars, codec{put: stay, get: setStay}},
	{TagMerchantIni, 2, 2, printChars, str(func(m *hostMsg) *string { return &m.MerchantInitiated })},
	{TagTI, 15, 15, printChars, str(func(m *hostMsg) *string { return &m.TI })},
	{TagWantToken, 1, 1, digitChars, flag(func(m *hostMsg) *bool { return &m.WantToken })},
	{TagToken, 16, 16, printChars, str(func(m *hostMsg) *string { return &m.Token })},
	{TagStandIn, 1, 1, digitChars, flag(func(m *hostMsg) *bool { return &m.StandIn })},
	{TagReversal, 2, 2, printChars, str(func(m *hostMsg) *string { return &m.ReversalReason })},
	{TagBatchUpload, 1, 1, digitChars, flag(func(m *hostMsg) *bool { return &m.BatchUpload })},
	{TagKSN, 24, 24, printChars, str(func(m *hostMsg) *string { return &m.KSN })},
	{TagEncrypted, 1, sterad.MaxEncryptedData, printChars, codec{put: encryptedCard, get: setEncryptedCard}},
}

type hostMsg = sterad.HostMessage

// dataElement is one data element: see dataElements.
type dataElement struct {
	de int
	layout
	name string
	codec
}

// tag is one DE 48 tag: a 2-character name, a 3-digit length, then a value
// of min to max chars.
type tag struct {
	name     string
	min, max int
	chars    charset
	codec
}

// codec moves one field between a HostMessage and the wire.
type codec struct {
	// put returns the field's value in m as it goes on the wire, without
	// length prefix or fill; "" when m has none. The caller checks it
	// against the field's layout.
	put func(m *hostMsg) (string, error)
	// get stores v, read from w and checked against the field's layout, in
	// m. Space fill is removed from text, zero fill kept on numbers.
	get func(m *hostMsg, v string, w *wireMessage) error
	// with lists the data elements that go together with this one: one
	// without the others is a format error.
	with []int
}

var (
	localTimeDEs = []int{12, 13}
	totalsDEs    = []int{74, 76, 86, 88, 97}
)

// str is a text or code field stored as is.
func str(field func(m *hostMsg) *string) codec {
	return codec{
		put: func(m *hostMsg) (string, error) { return *field(m), nil },
		get: func(m *hostMsg, v string, _ *wireMessage) error { *field(m) = v; return nil },
	}
}

// sensitive is card data: track 2, chip data.
func sensitive(field func(m *hostMsg) *sterad.Sensitive) codec {
	return codec{
		put: func(m *hostMsg) (string, error) { return string(*field(m)), nil },
		get: func(m *hostMsg, v string, _ *wireMessage) error { *field(m) = sterad.Sensitive(v); return nil },
	}
}

// flag is a DE 48 tag whose value 1 sets a bool.
func flag(field func(m *hostMsg) *bool) codec {
	return codec{
		put: func(m *hostMsg) (string, error) {
			if *field(m) {
				return "1", nil
			}
			return "", nil
		},
		get: func(m *hostMsg, v string, _ *wireMessage) error { *field(m) = v == "1"; return nil },
	}
}

// total is a count or an amount of the reconciliation totals.
func total(field func(t *sterad.Totals) *int64) codec {
	return codec{
		put: func(m *hostMsg) (string, error) {
			if m.Totals == nil {
				return "", nil
			}
			return strconv.FormatInt(*field(m.Totals), 10), nil
		},
		get: func(m *hostMsg, v string, _ *wireMessage) error {
			*field(totals(m)) = atoi(v)
			return nil
		},
		with: totalsDEs,
	}
}

func totals(m *hostMsg) *sterad.Totals {
	if m.Totals == nil {
		m.Totals = &sterad.Totals{}
	}
	return m.Totals
}

func pan(m *hostMsg) (string, error) { return m.PAN.Reveal(), nil }

func setPAN(m *hostMsg, v string, _ *wireMessage) error {
	m.PAN = sterad.PAN(v)
	return nil
}

func amount(m *hostMsg) (string, error) {
	if !m.HasAmount {
		return "", nil
	}
	if !m.Amount.Value.Shift(m.Amount.Currency.Exponent).IsInteger() {
		return "", errors.New("amount has more decimals than its currency")
	}
	return strconv.FormatInt(m.Amount.Minor(), 10), nil
}

// setAmount reads DE 4 in DE 49's currency, JPY when DE 49 is absent or
// unknown. It sets Currency too, as Pack writes DE 49 for every amount.
func setAmount(m *hostMsg, v string, w *wireMessage) error {
	cur := sterad.JPY
	if n, ok := w.value(49); ok {
		if c, ok := sterad.CurrencyByNumber(n); ok {
			cur = c
		}
	}
	m.HasAmount = true
	m.Amount = sterad.AmountFromMinor(atoi(v), cur)
	m.Currency = cur
	return nil
}

func currency(m *hostMsg) (string, error) {
	switch {
	case m.Currency.Number != "" || !m.HasAmount:
		return m.Currency.Number, nil
	case m.Amount.Currency.Number == "":
		return "", errors.New("an amount needs a currency")
	}
	return m.Amount.Currency.Number, nil
}

func setCurrency(m *hostMsg, v string, _ *wireMessage) error {
	c, ok := sterad.CurrencyByNumber(v)
	if !ok {
		m.Currency = sterad.JPY // as the amount is read
		return errors.New("unknown currency")
	}
	m.Currency = c
	return nil
}

func transmitted(m *hostMsg) (string, error) {
	if m.Transmitted.IsZero() {
		return "", nil
	}
	return mmddhhmmss(m.Transmitted.UTC()), nil
}

func setTransmitted(m *hostMsg, v string, w *wireMessage) error {
	t, err := parseMMDDhhmmss(v, w.received)
	m.Transmitted = t
	return err
}

func stan(m *hostMsg) (string, error) {
	if m.STAN == 0 {
		return "", nil
	}
	return strconv.Itoa(int(m.STAN)), nil // the layout refuses 7 digits and a sign
}

func setSTAN(m *hostMsg, v string, _ *wireMessage) error {
	if atoi(v) < 1 {
		return errors.New("must be 000001–999999")
	}
	m.STAN = sterad.STAN(atoi(v))
	return nil
}

func localTime(m *hostMsg) (string, error) {
	if m.LocalTime.IsZero() {
		return "", nil
	}
	h, mi, sec := m.LocalTime.Clock()
	return twoDigits(h, mi, sec), nil
}

func localDate(m *hostMsg) (string, error) {
	if m.LocalTime.IsZero() {
		return "", nil
	}
	_, mo, d := m.LocalTime.Date()
	return twoDigits(int(mo), d), nil
}

// setLocalTime reads DE 12 and 13 together.
func setLocalTime(m *hostMsg, v string, w *wireMessage) error {
	mmdd, ok := w.value(13)
	if !ok {
		return nil // DE 13 is missing: reported there
	}
	t, err := parseLocal(mmdd, v, w.received)
	m.LocalTime = t
	return err
}

func readWithDE12(*hostMsg, string, *wireMessage) error { return nil }

func expiry(m *hostMsg) (string, error) { return m.Expiry.String(), nil }

func setExpiry(m *hostMsg, v string, _ *wireMessage) error {
	e, err := sterad.ParseExpiry(v)
	if err != nil {
		return errors.New("must be YYMM")
	}
	m.Expiry = e
	return nil
}

func entryMode(m *hostMsg) (string, error) {
	if m.Entry == "" {
		return "", nil
	}
	return m.Entry.POSEntryMode(), nil
}

func setEntryMode(m *hostMsg, v string, _ *wireMessage) error {
	e, ok := sterad.EntryModeFromPOS(v)
	if !ok {
		return errors.New("unknown POS entry mode")
	}
	m.Entry = e
	return nil
}

// batch is written with 6 digits, though DE 60 is LLLVAR.
func batch(m *hostMsg) (string, error) {
	if m.Batch == 0 {
		return "", nil
	}
	if m.Batch < 1 || m.Batch > 999999 {
		return "", errors.New("batch number out of range")
	}
	return zeroFill(int64(m.Batch), 6), nil
}

func setBatch(m *hostMsg, v string, _ *wireMessage) error {
	if atoi(v) < 1 {
		return errors.New("must be a batch number of up to 6 digits")
	}
	m.Batch = int(atoi(v))
	return nil
}

// original is DE 90: MTI, STAN and DE 7 of the original message, then 22
// zeros.
func original(m *hostMsg) (string, error) {
	o := m.Original
	if o == nil {
		return "", nil
	}
	if !isDigits(string(o.MTI), 4) || o.STAN < 1 || o.STAN > sterad.MaxSTAN || o.Transmitted.IsZero() {
		return "", errors.New("original MTI, STAN and DE 7 are required")
	}
	return string(o.MTI) + zeroFill(int64(o.STAN), 6) + mmddhhmmss(o.Transmitted.UTC()) + strings.Repeat("0", 22), nil
}

func setOriginal(m *hostMsg, v string, w *wireMessage) error {
	o, err := parseOriginal(v, w.received)
	if err != nil {
		return err
	}
	m.Original = o
	return nil
}

// netSettlement is DE 97: C when debits ≥ credits, else D, then the
// difference in 16 digits.
func netSettlement(m *hostMsg) (string, error) {
	if m.Totals == nil {
		return "", nil
	}
	sign, net := m.Totals.Net()
	if net < 0 || net >= pow10[16] {
		return "", errors.New("out of range")
	}
	return sign + zeroFill(net, 16), nil
}

// checkNetSettlement checks DE 97 against DE 86 and 88, read before it.
func checkNetSettlement(m *hostMsg, v string, _ *wireMessage) error {
	if (v[0] != 'C' && v[0] != 'D') || !isDigits(v[1:], 16) {
		return errors.New("must be C or D and 16 digits")
	}
	if sign, net := totals(m).Net(); v[:1] != sign || atoi(v[1:]) != net {
		return errors.New("net amount does not match DE 86 and 88")
	}
	return nil
}

func stay(m *hostMsg) (string, error) {
	if m.Stay == nil {
		return "", nil
	}
	return m.Stay.CheckIn.Compact() + m.Stay.CheckOut.Compact(), nil
}

func setStay(m *hostMsg, v string, _ *wireMessage) error {
	in, err1 := sterad.ParseCompactDate(v[:8])
	out, err2 := sterad.ParseCompactDate(v[8:])
	if err1 != nil || err2 != nil {
		return errors.New("tag LD must be two YYYYMMDD dates")
	}
	m.Stay = &sterad.Stay{CheckIn: in, CheckOut: out}
	return nil
}
