package protocol_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/moov-io/iso8583"
	"github.com/sterad/sterad/protocol"
)

// FuzzUnpack checks that Unpack never panics, reports every failure as a
// *FormatError, and that what it accepts survives Pack and Unpack again
// unchanged. moov-io/iso8583 is the oracle of the table codec: whatever
// Unpack accepts, the library's route (UnpackISO, FromISO) reads the same
// way, and Pack writes the bytes the library packs (ToISO).
func FuzzUnpack(f *testing.F) {
	for _, g := range goldenMessages() {
		f.Add(readGolden(f, g.name))
	}
	// Inputs that once broke the round trip: control characters in
	// an/ans fields and DE 48 values, DE 4 without DE 49.
	approval := goldenMessage("0210-approval")
	f.Add(packWith(f, approval, setField(f, 38, "65\x004 1")))
	f.Add(packWith(f, approval, setField(f, 39, "0\n")))
	f.Add(packWith(f, approval, setField(f, 48, "TI015TI0000000000\x1f04")))
	f.Add(packWith(f, approval, func(msg *iso8583.Message) { msg.UnsetField(49) }))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := protocol.Unpack(data, received)
		if err != nil {
			var fe *protocol.FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Unpack error %v is not a *FormatError", err)
			}
			return
		}
		b, err := protocol.Pack(m)
		if err != nil {
			t.Fatalf("Pack of an accepted message: %v", err)
		}
		msg, err := protocol.UnpackISO(data)
		if err != nil {
			t.Fatalf("the table codec accepts what moov-io/iso8583 refuses: %v", err)
		}
		viaMoov, err := protocol.FromISO(msg, received)
		if err != nil {
			t.Fatalf("the table codec accepts what FromISO refuses: %v", err)
		}
		if d := diffMessages(m, viaMoov); len(d) > 0 {
			t.Fatalf("the table codec and moov-io/iso8583 read it differently:\n%s", strings.Join(d, "\n"))
		}
		if iso, err := protocol.ToISO(m); err != nil {
			t.Fatalf("ToISO of an accepted message: %v", err)
		} else if lb, err := iso.Pack(); err != nil || !bytes.Equal(lb, b) {
			t.Fatalf("Pack = %x\nmoov-io/iso8583 packs %x (%v)", b, lb, err)
		}
		again, err := protocol.Unpack(b, received)
		if err != nil {
			t.Fatalf("Unpack of the re-packed message: %v", err)
		}
		if d := diffMessages(m, again); len(d) > 0 {
			t.Fatalf("Unpack(Pack(Unpack(data))) differs:\n%s", strings.Join(d, "\n"))
		}
	})
}
