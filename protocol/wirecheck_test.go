package protocol_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
)

// TestWireCheck runs a real exchange between Client and the fake host and
// has Wireshark's ISO 8583 dissector, a decoder written independently of
// this package and of moov-io/iso8583, read the bytes of both directions.
//
// The dissector cannot read every layout of docs/acquirer-protocol.md, so these stay
// out (the golden tests cover them):
//   - DE 55 (its 1987 table reads it as text) and DE 86/88 (n15, not n16):
//     the chip sale and the 0500s;
//   - DE 35: with binary bitmaps it reads z fields as binary too: the swipe
//     sale;
//   - its heuristic reads the two binary bitmaps as text and gives up when
//     that text happens to be 16 characters long, which the bitmaps of the
//     completion (DE 38 + 90) and of the void (DE 37 + 90) do.
func TestWireCheck(t *testing.T) {
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Skip("tshark not found: `make wirecheck` installs it")
	}
	noLeaks(t)
	h := startHost(t, "127.0.0.1:0")
	c := startClient(t, h.addr(), nil)
	hc := h.nextConn(t)
	waitOnline(t, c)

	for _, name := range []string{"0100-preauth", "0100-incremental", "0100-cardcheck", "0200-moto",
		"0200-refund", "0200-noshow", "0200-noshow-token", "0220-standin", "0221-standin-repeat",
		"0420-reversal", "0421-reversal-repeat", "0320-batch-upload"} {
		m := goldenMessage(name)
		m.Transmitted = time.Now().UTC()
		exchange(t, c, m)
	}
	hc.send(&sterad.HostMessage{MTI: sterad.MTINetwork, Transmitted: tx, STAN: 77, TerminalID: "HOST0001", NetworkCode: sterad.NetEcho})
	c.stop() // signs off and closes
	for range hc.recv {
		// until the client has closed the connection
	}

	segs := hc.recorded()
	clientPort := hc.nc.RemoteAddr().(*net.TCPAddr).Port
	serverPort := hc.nc.LocalAddr().(*net.TCPAddr).Port
	pcap := filepath.Join(t.TempDir(), "exchange.pcap")
	if err := os.WriteFile(pcap, synthesizePcap(segs, uint16(clientPort), uint16(serverPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	tsharkRun := func(extra ...string) string {
		t.Helper()
		args := append([]string{"-r", pcap, "-d", "tcp.port==" + strconv.Itoa(serverPort) + ",iso8583",
			"-o", "iso8583.len_endian:Big endian", "-o", "iso8583.binencode:Bin data not encoded"}, extra...)
		out, err := exec.Command(tshark, args...).Output()
		if err != nil {
			t.Fatalf("tshark %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}

	verbose := tsharkRun("-V")
	if strings.Contains(verbose, "Malformed") || strings.Contains(verbose, "Expert Info (Error") {
		t.Errorf("tshark flags errors:\n%s", verbose)
	}
	// The dissector must have read every message, with the MTI, STAN and
	// terminal ID that went on the wire.
	var want []string
	for _, s := range segs {
		m, err := unpackFramed(s.data)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, string(m.MTI)+" "+m.STAN.String()+" "+strings.TrimSpace(m.TerminalID))
	}
	fields := tsharkRun("-Y", "iso8583", "-T", "fields", "-E", "separator= ",
		"-e", "iso8583.mti", "-e", "iso8583.bit11", "-e", "iso8583.bit41")
	var got []string
	for line := range strings.Lines(fields) {
		got = append(got, strings.TrimSpace(line))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tshark read:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if t.Failed() {
		t.Logf("tshark -V:\n%s", verbose)
	}
}

// unpackFramed unpacks a recorded message with its 2-byte length header.
func unpackFramed(b []byte) (*sterad.HostMessage, error) {
	return protocol.Unpack(b[2:], time.Now())
}

// synthesizePcap writes a pcap file of one TCP connection on loopback
// carrying segs, one message per segment: the handshake, the messages with
// consistent sequence and acknowledgement numbers, and the close.
func synthesizePcap(segs []segment, clientPort, serverPort uint16) []byte {
	var out bytes.Buffer
	le := binary.LittleEndian
	out.Write(le.AppendUint32(nil, 0xa1b2c3d4))            // magic: microsecond timestamps
	out.Write(le.AppendUint16(le.AppendUint16(nil, 2), 4)) // version 2.4
	out.Write(make([]byte, 8))                             // time zone, accuracy
	out.Write(le.AppendUint32(nil, 65535))                 // snapshot length
	out.Write(le.AppendUint32(nil, 1))                     // link type: Ethernet

	const (
		fin = 0x01
		syn = 0x02
		psh = 0x08
		ack = 0x10
	)
	ports := [2]uint16{clientPort, serverPort}
	seq := [2]uint32{0x1000, 0x8000}
	at := time.Date(2026, 3, 14, 6, 30, 0, 0, time.UTC)
	packet := func(from int, flags byte, payload []byte) {
		to := 1 - from
		var ackNo uint32
		if flags&ack != 0 {
			ackNo = seq[to]
		}
		tcp := binary.BigEndian.AppendUint16(nil, ports[from])
		tcp = binary.BigEndian.AppendUint16(tcp, ports[to])
		tcp = binary.BigEndian.AppendUint32(tcp, seq[from])
		tcp = binary.BigEndian.AppendUint32(tcp, ackNo)
		tcp = append(tcp, 5<<4, flags, 0xff, 0xff, 0, 0, 0, 0) // offset, flags, window, checksum, urgent
		tcp = append(tcp, payload...)
		loopback := []byte{127, 0, 0, 1}
		pseudo := append(append(append([]byte(nil), loopback...), loopback...), 0, 6)
		pseudo = binary.BigEndian.AppendUint16(pseudo, uint16(len(tcp)))
		binary.BigEndian.PutUint16(tcp[16:], checksum(append(pseudo, tcp...)))

		ip := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0}
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
		ip = append(append(ip, loopback...), loopback...)
		binary.BigEndian.PutUint16(ip[10:], checksum(ip))

		macs := [2][]byte{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}}
		frame := append(append(append([]byte(nil), macs[to]...), macs[from]...), 0x08, 0x00)
		frame = append(append(frame, ip...), tcp...)

		out.Write(le.AppendUint32(nil, uint32(at.Unix())))
		out.Write(le.AppendUint32(nil, uint32(at.Nanosecond()/1000)))
		out.Write(le.AppendUint32(nil, uint32(len(frame))))
		out.Write(le.AppendUint32(nil, uint32(len(frame))))
		out.Write(frame)
		at = at.Add(time.Millisecond)

		seq[from] += uint32(len(payload))
		if flags&(syn|fin) != 0 {
			seq[from]++
		}
	}
	const client, server = 0, 1
	packet(client, syn, nil)
	packet(server, syn|ack, nil)
	packet(client, ack, nil)
	for _, s := range segs {
		from, to := server, client
		if s.fromClient {
			from, to = client, server
		}
		packet(from, psh|ack, s.data)
		packet(to, ack, nil)
	}
	packet(client, fin|ack, nil)
	packet(server, fin|ack, nil)
	packet(client, ack, nil)
	return out.Bytes()
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
