package protocol

import (
	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/prefix"
)

// MaxMessageLength is the largest ISO 8583 message either side may send,
// not counting the 2-byte length header (acquirer-host.md §1).
const MaxMessageLength = 4096

// Spec is the acquirer host interface version 1 (acquirer-host.md §2–3):
// ASCII MTI, an 8-byte binary primary bitmap (and secondary when a field
// 65–128 is present), ASCII numeric and text fields, ASCII length prefixes.
//
// Fields are declared without padding: Pack and Unpack in this package
// format every fixed field to its exact width (zero-filled digits,
// space-filled text), so what is set is exactly what goes on the wire and
// "000000" stays "000000" when read back.
var Spec = &iso8583.MessageSpec{
	Name: "sterad acquirer host interface v1",
	Fields: map[int]field.Field{
		0:  fixed(4, "Message Type Indicator"),
		1:  field.NewBitmap(&field.Spec{Length: 8, Description: "Bitmap", Enc: encoding.Binary, Pref: prefix.Binary.Fixed}),
		2:  llvar(19, "Primary Account Number"),
		3:  fixed(6, "Processing Code"),
		4:  fixed(12, "Transaction Amount"),
		7:  fixed(10, "Transmission Date & Time"),
		11: fixed(6, "Systems Trace Audit Number (STAN)"),
		12: fixed(6, "Local Transaction Time"),
		13: fixed(4, "Local Transaction Date"),
		14: fixed(4, "Expiration Date"),
		18: fixed(4, "Merchant Type"),
		22: fixed(3, "Point of Sale (POS) Entry Mode"),
		25: fixed(2, "Point of Service Condition Code"),
		35: llvar(37, "Track 2 Data"),
		37: fixed(12, "Retrieval Reference Number"),
		38: fixed(6, "Authorization Identification Response"),
		39: fixed(2, "Response Code"),
		41: fixed(8, "Card Acceptor Terminal Identification"),
		42: fixed(15, "Card Acceptor Identification Code"),
		48: lllvar(999, "Additional Data - Private"),
		49: fixed(3, "Transaction Currency Code"),
		55: field.NewBinary(&field.Spec{Length: 255, Description: "ICC Data", Enc: encoding.Binary, Pref: prefix.ASCII.LLL}),
		60: lllvar(6, "Batch Number"),
		70: fixed(3, "Network Management Information Code"),
		74: fixed(10, "Credits, Number"),
		76: fixed(10, "Debits, Number"),
		86: fixed(16, "Credits, Amount"),
		88: fixed(16, "Debits, Amount"),
		90: fixed(42, "Original Data Elements"),
		97: fixed(17, "Amount, Net Settlement"),
	},
}

func fixed(n int, desc string) field.Field {
	return field.NewString(&field.Spec{Length: n, Description: desc, Enc: encoding.ASCII, Pref: prefix.ASCII.Fixed})
}

func llvar(n int, desc string) field.Field {
	return field.NewString(&field.Spec{Length: n, Description: desc, Enc: encoding.ASCII, Pref: prefix.ASCII.LL})
}

func lllvar(n int, desc string) field.Field {
	return field.NewString(&field.Spec{Length: n, Description: desc, Enc: encoding.ASCII, Pref: prefix.ASCII.LLL})
}
