package protocol_test

import (
	"testing"

	"github.com/sterad/sterad/protocol"
)

func BenchmarkPack0100(b *testing.B) {
	m := goldenMessage("0100-preauth")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := protocol.Pack(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnpack0110(b *testing.B) {
	data := readGolden(b, "0110-approval")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := protocol.Unpack(data, received); err != nil {
			b.Fatal(err)
		}
	}
}
