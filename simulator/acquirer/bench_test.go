package acquirer_test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/acquirer"
)

// BenchmarkSales pushes sales through one connection with up to 64
// outstanding, as the gateway does, and reports transactions per second.
//
//	go test -run '^$' -bench Sales -cpu 2 ./simulator/acquirer/
func BenchmarkSales(b *testing.B) {
	for _, persist := range []bool{false, true} {
		b.Run(fmt.Sprintf("datadir=%v", persist), func(b *testing.B) {
			opts := acquirer.Options{Clock: sterad.NewFakeClock(testStart)}
			if persist {
				opts.DataDir = b.TempDir()
			}
			benchSales(b, opts)
		})
	}
}

func benchSales(b *testing.B, opts acquirer.Options) {
	h := acquirer.New(opts)
	defer h.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go h.Serve(ln)
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	frame := func(m *sterad.HostMessage) []byte {
		p, err := protocol.Pack(m)
		if err != nil {
			b.Fatal(err)
		}
		f := make([]byte, 2+len(p))
		binary.BigEndian.PutUint16(f, uint16(len(p)))
		copy(f[2:], p)
		return f
	}
	de7 := testStart
	frames := make([][]byte, b.N)
	for i := range frames {
		frames[i] = frame(&sterad.HostMessage{
			MTI: sterad.MTIFinancial, PAN: visa, Expiry: expiry(validExp), Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: yen(int64(1000 + i%5000)), Currency: sterad.JPY, Transmitted: de7,
			STAN: sterad.STAN(i%999999 + 1), TerminalID: fmt.Sprintf("T%07d", i/999999),
			Entry: sterad.EntryKeyed, Condition: sterad.CondMailPhone, Batch: 1,
		})
	}
	signOn := frame(&sterad.HostMessage{MTI: sterad.MTINetwork, STAN: 1, Transmitted: de7, TerminalID: "T0000000", NetworkCode: sterad.NetSignOn})
	br := bufio.NewReader(nc)
	read := func() {
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			b.Fatal(err)
		}
		if _, err := br.Discard(int(binary.BigEndian.Uint16(hdr[:]))); err != nil {
			b.Fatal(err)
		}
	}
	nc.Write(signOn)
	read()

	const window = 64
	slots := make(chan struct{}, window)
	b.ResetTimer()
	start := time.Now()
	go func() {
		bw := bufio.NewWriter(nc)
		for _, f := range frames {
			slots <- struct{}{}
			bw.Write(f)
			if len(slots) == cap(slots) || len(slots) == 1 {
				bw.Flush()
			}
		}
		bw.Flush()
	}()
	for range frames {
		read()
		<-slots
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tx/s")
}
