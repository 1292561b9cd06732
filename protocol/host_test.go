package protocol_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moov-io/iso8583"
	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/iso8583")

// Test data shared by the golden, fuzz, benchmark and client tests.
var (
	testPAN = sterad.PAN("4111111111111111")
	testExp = sterad.Expiry{Year: 2028, Month: 12}
	tokyo   = time.FixedZone("Asia/Tokyo", 9*60*60)
	// tx is the transmission time (DE 7) of the messages; received is when
	// they are read back (the reference for DE 7's missing year).
	tx       = time.Date(2026, 3, 14, 6, 29, 58, 0, time.UTC)
	received = tx.Add(2 * time.Second)
	icc      = sterad.Sensitive{0x9f, 0x26, 0x08, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x9f, 0x27, 0x01, 0x80, 0x95, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00}
	stay     = &sterad.Stay{CheckIn: sterad.Date{Year: 2026, Month: 3, Day: 14}, CheckOut: sterad.Date{Year: 2026, Month: 3, Day: 16}}
)

const (
	termID    = "FD01"     // a physical terminal at the front desk
	virtualID = "VIRT0001" // the merchant's virtual terminal
	merchant  = "HOTEL-KYOTO-01"
	testTI    = "TI0000000000001"
	testToken = "TK00000000000042"
)

// Card blocks of terminal FD01 (docs/terminal-protocol.md §7): the test card
// 4111111111111111, expiry 2812, encrypted under the test BDK with the KSN
// counters 1, 2 and 3 (the third with its track 2, a swipe). Made by
// simulator/dukpt, which the protocol package does not import: the
// gateway passes them on and cannot read them.
const (
	blockKSN1  = "123456781483E0A100000001"
	blockData1 = "8E6F4F94F0072028F58E826780D4ACA3C7A5A72CCCE8D8D90E204818893F08276CECA8BBBFA06A52AA3A2653D4654BB8"
	blockKSN2  = "123456781483E0A100000002"
	blockData2 = "579F8ABB034587CB81FF133D1DA83446B0DC1CD23BDDA4195EBA49745233BF990E3AD8DCD27990EFCB6D02862BFEE9EF"
	blockKSN3  = "123456781483E0A100000003"
	blockData3 = "E852B429063C0AFCE4049CC7697F80BFDB6144774A1C7786C295140FB25C3ABC15DA5D75046AA0DAD9E6993F7C25ADAF94826F38F0C9F6CB3DE74FE160360BBA01D227530CBC3AF24EF69EB0ABCC0AB3C10F07CF2FF74FC61E448C42A565F714"
)

type golden struct {
	name string
	msg  *sterad.HostMessage
}

func jpy(n int64) sterad.Amount { return sterad.NewAmount(n, sterad.JPY) }

// goldenMessages returns one message of every layout of docs/acquirer-protocol.md §5.
// Each call returns fresh values.
func goldenMessages() []golden {
	local := tx.In(tokyo)
	return []golden{
		{"0100-preauth", &sterad.HostMessage{
			MTI: sterad.MTIAuthorization, PAN: testPAN, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(30000), Currency: sterad.JPY, Transmitted: tx, STAN: 1,
			LocalTime: local, Expiry: testExp, MCC: "7011", Entry: sterad.EntryContactless,
			Condition: sterad.CondPreauth, TerminalID: termID, MerchantID: merchant,
			Reference: "RES-0042", Stay: stay,
		}},
		{"0100-incremental", &sterad.HostMessage{
			MTI: sterad.MTIAuthorization, PAN: testPAN, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(12000), Currency: sterad.JPY, Transmitted: tx.Add(time.Hour), STAN: 2,
			LocalTime: local.Add(time.Hour), Expiry: testExp, MCC: "7011", Entry: sterad.EntryKeyed,
			Condition: sterad.CondPreauth, TerminalID: virtualID, MerchantID: merchant,
			MerchantInitiated: sterad.MIIncremental, TI: testTI,
		}},
		{"0100-cardcheck", &sterad.HostMessage{
			MTI: sterad.MTIAuthorization, PAN: testPAN, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(0), Currency: sterad.JPY, Transmitted: tx, STAN: 3,
			LocalTime: local, Expiry: testExp, MCC: "7011", Entry: sterad.EntryKeyed,
			Condition: sterad.CondVerification, TerminalID: virtualID, MerchantID: merchant,
			WantToken: true,
		}},
		{"0110-approval", &sterad.HostMessage{
			MTI: sterad.MTIAuthorizationResponse, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(0), Currency: sterad.JPY, Transmitted: tx, STAN: 3,
			RRN: "607306000123", AuthCode: "A1B2C3", ResponseCode: "85", TerminalID: virtualID,
			TI: "TI0000000000003", Token: testToken,
		}},
		{"0200-sale-chip", &sterad.HostMessage{
			MTI: sterad.MTIFinancial, PAN: testPAN, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(12800), Currency: sterad.JPY, Transmitted: tx, STAN: 4,
			LocalTime: local, Expiry: testExp, MCC: "7011", Entry: sterad.EntryChip,
			Condition: sterad.CondNormal, TerminalID: termID, MerchantID: merchant, ICC: icc, Batch: 12,
		}},
		{"0200-sale-swipe", &sterad.HostMessage{
			MTI: sterad.MTIFinancial, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(5500), Currency: sterad.JPY, Transmitted: tx, STAN: 5,
			LocalTime: local, MCC: "7011", Entry: sterad.EntrySwipe, Condition: sterad.CondNormal,
			Track2: sterad.Sensitive("4111111111111111D28121010000012300"), TerminalID: termID,
			MerchantID: merchant, Batch: 12,
		}},
		{"0200-moto", &sterad.HostMessage{
			MTI: sterad.MTIFinancial, PAN: testPAN, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(22000), Currency: sterad.JPY, Transmitted: tx, STAN: 6,
			LocalTime: local, Expiry: testExp, MCC: "7011", Entry: sterad.EntryKeyed,
			Condition: sterad.CondMailPhone, TerminalID: virtualID, MerchantID: merchant, Batch: 12,
			Reference: "FOLIO-7781",
		}},
		{"0200-refund", &sterad.HostMessage{
			MTI: sterad.MTIFinancial, PAN: testPAN, Processing: sterad.ProcRefund,
			HasAmount: true, Amount: jpy(5000), Currency: sterad.JPY, Transmitted: tx, STAN: 7,
			LocalTime: local, Expiry: testExp, MCC: "7011", Entry: sterad.EntryKeyed,
			Condition: sterad.CondNormal, TerminalID: virtualID, MerchantID: merchant, Batch: 12,
			TI: testTI,
		}},
		{"0200-noshow", &sterad.HostMessage{
			MTI: sterad.MTIFinancial, PAN: testPAN, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(18000), Currency: sterad.JPY, Transmitted: tx, STAN: 8,
			LocalTime: local, Expiry: testExp, MCC: "7011", Entry: sterad.EntryKeyed,
			Condition: sterad.CondMailPhone, TerminalID: virtualID, MerchantID: merchant, Batch: 12,
			MerchantInitiated: sterad.MINoShow, Stay: stay, Reference: "RES-0042",
		}},
		{"0200-noshow-token", &sterad.HostMessage{
			MTI: sterad.MTIFinancial, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(18000), Currency: sterad.JPY, Transmitted: tx, STAN: 9,
			LocalTime: local, MCC: "7011", Entry: sterad.EntryToken,
			Condition: sterad.CondMailPhone, TerminalID: virtualID, MerchantID: merchant, Batch: 12,
			MerchantInitiated: sterad.MINoShow, Stay: stay, Reference: "RES-0043", Token: testToken,
		}},
		{"0210-approval", &sterad.HostMessage{
			MTI: sterad.MTIFinancialResponse, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(12800), Currency: sterad.JPY, Transmitted: tx, STAN: 4,
			RRN: "607306000124", AuthCode: "654321", ResponseCode: "00", TerminalID: termID,
			TI: "TI0000000000004",
		}},
		{"0220-completion", &sterad.HostMessage{
			MTI: sterad.MTIAdvice, PAN: testPAN, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(41500), Currency: sterad.JPY, Transmitted: tx.Add(48 * time.Hour), STAN: 10,
			LocalTime: local.Add(48 * time.Hour), Expiry: testExp, MCC: "7011", Entry: sterad.EntryContactless,
			Condition: sterad.CondPreauth, AuthCode: "A1B2C3", TerminalID: termID, MerchantID: merchant,
			Batch: 12, TI: testTI,
			Original: &sterad.OriginalData{MTI: sterad.MTIAuthorization, STAN: 1, Transmitted: tx},
		}},
		{"0220-standin", standIn(sterad.MTIAdvice)},
		{"0221-standin-repeat", standIn(sterad.MTIAdviceRepeat)},
		{"0230", &sterad.HostMessage{
			MTI: sterad.MTIAdviceResponse, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(8800), Currency: sterad.JPY, Transmitted: tx, STAN: 11,
			ResponseCode: "00", TerminalID: termID,
		}},
		{"0400-void", &sterad.HostMessage{
			MTI: sterad.MTIVoid, PAN: testPAN, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(12800), Currency: sterad.JPY, Transmitted: tx.Add(10 * time.Minute), STAN: 4,
			LocalTime: local.Add(10 * time.Minute), Expiry: testExp, MCC: "7011", Entry: sterad.EntryChip,
			Condition: sterad.CondNormal, RRN: "607306000124", TerminalID: termID, MerchantID: merchant,
			Batch: 12, ReversalReason: sterad.RRVoid, TI: "TI0000000000004",
			Original: &sterad.OriginalData{MTI: sterad.MTIFinancial, STAN: 4, Transmitted: tx},
		}},
		{"0410", response(sterad.MTIVoidResponse, 12800, tx.Add(10*time.Minute), 4)},
		{"0420-reversal", reversal(sterad.MTIReversal)},
		{"0421-reversal-repeat", reversal(sterad.MTIReversalRepeat)},
		{"0430", response(sterad.MTIReversalResponse, 30000, tx.Add(time.Minute), 1)},
		{"0320-batch-upload", &sterad.HostMessage{
			MTI: sterad.MTIBatchUpload, PAN: testPAN, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(12800), Currency: sterad.JPY, Transmitted: tx.Add(20 * time.Hour), STAN: 4,
			Expiry: testExp, Entry: sterad.EntryChip, Condition: sterad.CondNormal,
			RRN: "607306000124", AuthCode: "654321", TerminalID: termID, MerchantID: merchant, Batch: 12,
		}},
		{"0330", response(sterad.MTIBatchUploadResponse, 12800, tx.Add(20*time.Hour), 4)},
		{"0500-reconciliation", &sterad.HostMessage{
			MTI: sterad.MTIReconciliation, Transmitted: tx.Add(20 * time.Hour), STAN: 20,
			TerminalID: termID, MerchantID: merchant, Batch: 12,
			Totals: &sterad.Totals{CreditCount: 1, DebitCount: 3, CreditAmount: 5000, DebitAmount: 62700},
		}},
		{"0500-after-upload", &sterad.HostMessage{
			MTI: sterad.MTIReconciliation, Transmitted: tx.Add(21 * time.Hour), STAN: 21,
			TerminalID: virtualID, MerchantID: merchant, Batch: 12, BatchUpload: true,
			Totals: &sterad.Totals{CreditCount: 2, DebitCount: 1, CreditAmount: 20000, DebitAmount: 12800},
		}},
		{"0510", &sterad.HostMessage{
			MTI: sterad.MTIReconciliationResp, Transmitted: tx.Add(20 * time.Hour), STAN: 20,
			ResponseCode: "95", TerminalID: termID,
		}},
		// Version 1.1, card-data-blind (docs/acquirer-protocol.md §8): the
		// terminal's encrypted block (KS, EC) instead of DE 2, 14 and 35;
		// TR=1 on a pre-authorization and a sale, answered with TK;
		// uploads by TI and TK.
		{"0100-preauth-blind", &sterad.HostMessage{
			MTI: sterad.MTIAuthorization, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(30000), Currency: sterad.JPY, Transmitted: tx, STAN: 41,
			LocalTime: local, MCC: "7011", Entry: sterad.EntryContactless,
			Condition: sterad.CondPreauth, TerminalID: termID, MerchantID: merchant,
			Reference: "RES-0042", Stay: stay, WantToken: true, KSN: blockKSN1, EncryptedCard: blockData1,
		}},
		{"0110-approval-token", &sterad.HostMessage{
			MTI: sterad.MTIAuthorizationResponse, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(30000), Currency: sterad.JPY, Transmitted: tx, STAN: 41,
			RRN: "607306000141", AuthCode: "B2C3D4", ResponseCode: "00", TerminalID: termID,
			TI: "TI0000000000041", Token: testToken,
		}},
		{"0200-sale-blind", &sterad.HostMessage{
			MTI: sterad.MTIFinancial, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(12800), Currency: sterad.JPY, Transmitted: tx, STAN: 42,
			LocalTime: local, MCC: "7011", Entry: sterad.EntryChip,
			Condition: sterad.CondNormal, TerminalID: termID, MerchantID: merchant, ICC: icc, Batch: 12,
			WantToken: true, KSN: blockKSN2, EncryptedCard: blockData2,
		}},
		{"0210-approval-token", &sterad.HostMessage{
			MTI: sterad.MTIFinancialResponse, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(12800), Currency: sterad.JPY, Transmitted: tx, STAN: 42,
			RRN: "607306000142", AuthCode: "C3D4E5", ResponseCode: "00", TerminalID: termID,
			TI: "TI0000000000042", Token: "TK00000000000043",
		}},
		{"0220-standin-blind", &sterad.HostMessage{
			MTI: sterad.MTIAdvice, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(8800), Currency: sterad.JPY, Transmitted: tx, STAN: 43,
			LocalTime: local, MCC: "7011", Entry: sterad.EntrySwipe,
			Condition: sterad.CondNormal, AuthCode: "Y00043", TerminalID: termID, MerchantID: merchant,
			Batch: 12, StandIn: true, KSN: blockKSN3, EncryptedCard: blockData3,
		}},
		{"0320-batch-upload-blind", &sterad.HostMessage{
			MTI: sterad.MTIBatchUpload, Processing: sterad.ProcPurchase,
			HasAmount: true, Amount: jpy(12800), Currency: sterad.JPY, Transmitted: tx.Add(20 * time.Hour), STAN: 42,
			Entry: sterad.EntryChip, Condition: sterad.CondNormal,
			RRN: "607306000142", AuthCode: "C3D4E5", TerminalID: termID, MerchantID: merchant, Batch: 12,
			TI: "TI0000000000042", Token: "TK00000000000043",
		}},
		{"0800-signon", network(sterad.NetSignOn)},
		{"0800-echo", network(sterad.NetEcho)},
		{"0810", &sterad.HostMessage{
			MTI: sterad.MTINetworkResponse, Transmitted: tx, STAN: 30, ResponseCode: "00",
			TerminalID: virtualID, NetworkCode: sterad.NetSignOn,
		}},
	}
}

// goldenMessage returns a fresh copy of the golden message called name.
func goldenMessage(name string) *sterad.HostMessage {
	for _, g := range goldenMessages() {
		if g.name == name {
			return g.msg
		}
	}
	panic("no golden message " + name)
}

func standIn(mti sterad.MTI) *sterad.HostMessage {
	return &sterad.HostMessage{
		MTI: mti, PAN: testPAN, Processing: sterad.ProcPurchase,
		HasAmount: true, Amount: jpy(8800), Currency: sterad.JPY, Transmitted: tx, STAN: 11,
		LocalTime: tx.In(tokyo), Expiry: testExp, MCC: "7011", Entry: sterad.EntryChip,
		Condition: sterad.CondNormal, AuthCode: "Y00011", TerminalID: termID, MerchantID: merchant,
		Batch: 12, StandIn: true,
	}
}

func reversal(mti sterad.MTI) *sterad.HostMessage {
	return &sterad.HostMessage{
		MTI: mti, PAN: testPAN, Processing: sterad.ProcPurchase,
		HasAmount: true, Amount: jpy(30000), Currency: sterad.JPY, Transmitted: tx.Add(time.Minute), STAN: 1,
		LocalTime: tx.Add(time.Minute).In(tokyo), Expiry: testExp, MCC: "7011", Entry: sterad.EntryContactless,
		Condition: sterad.CondPreauth, TerminalID: termID, MerchantID: merchant, Batch: 12,
		ReversalReason: sterad.RRTimeout,
		Original:       &sterad.OriginalData{MTI: sterad.MTIAuthorization, STAN: 1, Transmitted: tx},
	}
}

func response(mti sterad.MTI, amount int64, at time.Time, stan sterad.STAN) *sterad.HostMessage {
	return &sterad.HostMessage{
		MTI: mti, Processing: sterad.ProcPurchase, HasAmount: true, Amount: jpy(amount),
		Currency: sterad.JPY, Transmitted: at, STAN: stan, ResponseCode: "00", TerminalID: termID,
	}
}

func network(code string) *sterad.HostMessage {
	return &sterad.HostMessage{
		MTI: sterad.MTINetwork, Transmitted: tx, STAN: 30, LocalTime: tx.In(tokyo),
		TerminalID: virtualID, MerchantID: merchant, NetworkCode: code,
	}
}

func goldenPath(name string) string {
	return filepath.Join("..", "testdata", "iso8583", name+".hex")
}

// readGolden returns the bytes of a golden file: hex, whitespace ignored.
func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	text, err := os.ReadFile(goldenPath(name))
	if err != nil {
		t.Fatalf("read golden %s (run with -update to create it): %v", name, err)
	}
	b, err := hex.DecodeString(strings.Join(strings.Fields(string(text)), ""))
	if err != nil {
		t.Fatalf("golden %s: %v", name, err)
	}
	return b
}

// writeGolden writes b as lowercase hex, 32 bytes per line.
func writeGolden(t *testing.T, name string, b []byte) {
	t.Helper()
	var s strings.Builder
	for len(b) > 0 {
		n := min(len(b), 32)
		s.WriteString(hex.EncodeToString(b[:n]))
		s.WriteByte('\n')
		b = b[n:]
	}
	if err := os.MkdirAll(filepath.Dir(goldenPath(name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goldenPath(name), []byte(s.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGolden(t *testing.T) {
	for _, g := range goldenMessages() {
		t.Run(g.name, func(t *testing.T) {
			b, err := protocol.Pack(g.msg)
			if err != nil {
				t.Fatalf("Pack: %v", err)
			}
			if *update {
				writeGolden(t, g.name, b)
			}
			if want := readGolden(t, g.name); !bytes.Equal(b, want) {
				t.Fatalf("Pack differs from %s:\n got %x\nwant %x", goldenPath(g.name), b, want)
			}
			if g.msg.MTI != sterad.MTI(b[:4]) {
				t.Errorf("MTI on the wire = %q, want %q", b[:4], g.msg.MTI)
			}
			// The secondary bitmap is there exactly when a field 65–128 is.
			secondary := g.msg.NetworkCode != "" || g.msg.Totals != nil || g.msg.Original != nil
			if got := b[4]&0x80 != 0; got != secondary {
				t.Errorf("bit 1 (secondary bitmap) = %v, want %v", got, secondary)
			}
			got, err := protocol.Unpack(b, received)
			if err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			if d := diffMessages(g.msg, got); len(d) > 0 {
				t.Errorf("Unpack(Pack(m)) differs from m:\n%s", strings.Join(d, "\n"))
			}
		})
	}
}

// TestISOFormAgrees checks that the moov-io/iso8583 form, which the client's
// connection reads and writes with Spec, gives the same bytes and the same
// message as Pack and Unpack: both come from one table of data elements.
func TestISOFormAgrees(t *testing.T) {
	for _, g := range goldenMessages() {
		t.Run(g.name, func(t *testing.T) {
			want := readGolden(t, g.name)
			msg, err := protocol.ToISO(g.msg)
			if err != nil {
				t.Fatalf("ToISO: %v", err)
			}
			if b, err := msg.Pack(); err != nil || !bytes.Equal(b, want) {
				t.Fatalf("ToISO(m).Pack() = %x, %v\nwant %x", b, err, want)
			}
			msg, err = protocol.UnpackISO(want)
			if err != nil {
				t.Fatalf("UnpackISO: %v", err)
			}
			got, err := protocol.FromISO(msg, received)
			if err != nil {
				t.Fatalf("FromISO: %v", err)
			}
			if d := diffMessages(g.msg, got); len(d) > 0 {
				t.Errorf("FromISO(UnpackISO(golden)) differs from m:\n%s", strings.Join(d, "\n"))
			}
		})
	}
}

// TestPack0100PreauthByHand assembles the 0100 pre-authorization golden
// message byte by byte from docs/acquirer-protocol.md#encoding, independently of the
// spec declaration in spec.go.
func TestPack0100PreauthByHand(t *testing.T) {
	want := bytes.Join([][]byte{
		[]byte("0100"), // MTI: 4 ASCII digits
		// Primary bitmap, 8 bytes binary. Fields 2 3 4 7 | 11 12 13 14 |
		// 18 22 | 25 | — | 41 42 48 | 49 | —; bit 1 clear: no field
		// 65–128, so no secondary bitmap.
		//   0x72 = 0111 0010: bits 2, 3, 4, 7
		//   0x3c = 0011 1100: bits 11, 12, 13, 14
		//   0x44 = 0100 0100: bits 18, 22
		//   0x80 = 1000 0000: bit 25
		//   0xc1 = 1100 0001: bits 41, 42, 48
		//   0x80 = 1000 0000: bit 49
		{0x72, 0x3c, 0x44, 0x80, 0x00, 0xc1, 0x80, 0x00},
		[]byte("16" + "4111111111111111"), // DE 2 n..19 LLVAR: 2 ASCII digits of length
		[]byte("000000"),                  // DE 3 n6 purchase
		[]byte("000000030000"),            // DE 4 n12 ¥30,000, zero-filled, no minor unit
		[]byte("0314062958"),              // DE 7 n10 MMDDhhmmss UTC
		[]byte("000001"),                  // DE 11 n6 STAN, zero-filled
		[]byte("152958"),                  // DE 12 n6 hhmmss, Tokyo local time (UTC+9)
		[]byte("0314"),                    // DE 13 n4 MMDD local
		[]byte("2812"),                    // DE 14 n4 YYMM
		[]byte("7011"),                    // DE 18 n4 lodging
		[]byte("071"),                     // DE 22 n3 contactless
		[]byte("06"),                      // DE 25 n2 pre-authorization
		[]byte("FD01    "),                // DE 41 ans8, space-filled
		[]byte("HOTEL-KYOTO-01 "),         // DE 42 ans15, space-filled
		[]byte("034" + "RF008RES-0042" + // DE 48 LLLVAR: 3 ASCII digits of length;
			"LD0162026031420260316"), //        tags RF then LD, each name + 3-digit length + value
		[]byte("392"), // DE 49 n3 JPY
	}, nil)
	m := goldenMessage("0100-preauth")
	got, err := protocol.Pack(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Pack(0100 pre-auth):\n got %x\nwant %x", got, want)
	}
	if g := readGolden(t, "0100-preauth"); !bytes.Equal(g, want) {
		t.Fatalf("golden 0100-preauth:\n got %x\nwant %x", g, want)
	}
}

// diffMessages compares two messages field by field: decimals and times by
// value, LocalTime by its wall clock (DE 12/13 carry no zone), sensitive
// data by content. It never prints card data: PANs print masked.
func diffMessages(want, got *sterad.HostMessage) []string {
	var d []string
	check := func(name string, eq bool, w, g any) {
		if !eq {
			d = append(d, fmt.Sprintf("%s: got %v, want %v", name, g, w))
		}
	}
	wall := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format("2006-01-02 15:04:05")
	}
	check("MTI", want.MTI == got.MTI, want.MTI, got.MTI)
	check("PAN (DE 2)", want.PAN == got.PAN, want.PAN, got.PAN)
	check("Processing (DE 3)", want.Processing == got.Processing, want.Processing, got.Processing)
	check("HasAmount (DE 4)", want.HasAmount == got.HasAmount, want.HasAmount, got.HasAmount)
	check("Amount (DE 4)", want.Amount.Value.Equal(got.Amount.Value), want.Amount, got.Amount)
	check("Amount currency", want.Amount.Currency == got.Amount.Currency, want.Amount.Currency, got.Amount.Currency)
	check("Currency (DE 49)", want.Currency == got.Currency, want.Currency, got.Currency)
	check("Transmitted (DE 7)", want.Transmitted.Equal(got.Transmitted), want.Transmitted, got.Transmitted)
	check("STAN (DE 11)", want.STAN == got.STAN, want.STAN, got.STAN)
	check("LocalTime (DE 12/13)", wall(want.LocalTime) == wall(got.LocalTime), wall(want.LocalTime), wall(got.LocalTime))
	check("Expiry (DE 14)", want.Expiry == got.Expiry, want.Expiry, got.Expiry)
	check("MCC (DE 18)", want.MCC == got.MCC, want.MCC, got.MCC)
	check("Entry (DE 22)", want.Entry == got.Entry, want.Entry, got.Entry)
	check("Condition (DE 25)", want.Condition == got.Condition, want.Condition, got.Condition)
	check("Track2 (DE 35)", bytes.Equal(want.Track2, got.Track2), len(want.Track2), len(got.Track2))
	check("RRN (DE 37)", want.RRN == got.RRN, want.RRN, got.RRN)
	check("AuthCode (DE 38)", want.AuthCode == got.AuthCode, want.AuthCode, got.AuthCode)
	check("ResponseCode (DE 39)", want.ResponseCode == got.ResponseCode, want.ResponseCode, got.ResponseCode)
	check("TerminalID (DE 41)", want.TerminalID == got.TerminalID, want.TerminalID, got.TerminalID)
	check("MerchantID (DE 42)", want.MerchantID == got.MerchantID, want.MerchantID, got.MerchantID)
	check("ICC (DE 55)", bytes.Equal(want.ICC, got.ICC), len(want.ICC), len(got.ICC))
	check("Batch (DE 60)", want.Batch == got.Batch, want.Batch, got.Batch)
	check("NetworkCode (DE 70)", want.NetworkCode == got.NetworkCode, want.NetworkCode, got.NetworkCode)
	check("Totals (DE 74–97)", (want.Totals == nil) == (got.Totals == nil) &&
		(want.Totals == nil || *want.Totals == *got.Totals), want.Totals, got.Totals)
	check("Original (DE 90)", (want.Original == nil) == (got.Original == nil) &&
		(want.Original == nil || want.Original.MTI == got.Original.MTI && want.Original.STAN == got.Original.STAN &&
			want.Original.Transmitted.Equal(got.Original.Transmitted)), want.Original, got.Original)
	check("Reference (DE 48 RF)", want.Reference == got.Reference, want.Reference, got.Reference)
	check("Stay (DE 48 LD)", (want.Stay == nil) == (got.Stay == nil) && (want.Stay == nil || *want.Stay == *got.Stay), want.Stay, got.Stay)
	check("MerchantInitiated (DE 48 MI)", want.MerchantInitiated == got.MerchantInitiated, want.MerchantInitiated, got.MerchantInitiated)
	check("TI (DE 48)", want.TI == got.TI, want.TI, got.TI)
	check("WantToken (DE 48 TR)", want.WantToken == got.WantToken, want.WantToken, got.WantToken)
	check("Token (DE 48 TK)", want.Token == got.Token, want.Token, got.Token)
	check("StandIn (DE 48 SI)", want.StandIn == got.StandIn, want.StandIn, got.StandIn)
	check("ReversalReason (DE 48 RR)", want.ReversalReason == got.ReversalReason, want.ReversalReason, got.ReversalReason)
	check("BatchUpload (DE 48 BU)", want.BatchUpload == got.BatchUpload, want.BatchUpload, got.BatchUpload)
	check("KSN (DE 48 KS)", want.KSN == got.KSN, want.KSN, got.KSN)
	check("EncryptedCard (DE 48 EC)", want.EncryptedCard == got.EncryptedCard, len(want.EncryptedCard), len(got.EncryptedCard))
	return d
}

// packWith packs m after letting edit change the moov message: the way to
// build wire data that Pack itself refuses to produce.
func packWith(t testing.TB, m *sterad.HostMessage, edit func(*iso8583.Message)) []byte {
	t.Helper()
	msg, err := protocol.ToISO(m)
	if err != nil {
		t.Fatal(err)
	}
	edit(msg)
	b, err := msg.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func setField(t testing.TB, de int, v string) func(*iso8583.Message) {
	return func(msg *iso8583.Message) {
		if err := msg.Field(de, v); err != nil {
			t.Fatal(err)
		}
	}
}

// assertFormatError checks that err is a *protocol.FormatError for field de
// and that its text does not quote the test card number.
func assertFormatError(t *testing.T, err error, de int) {
	t.Helper()
	var fe *protocol.FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("error = %v, want a *protocol.FormatError", err)
	}
	if fe.Field != de {
		t.Errorf("FormatError.Field = %d (%v), want %d", fe.Field, err, de)
	}
	if strings.Contains(err.Error(), testPAN.Reveal()) {
		t.Errorf("error text contains the card number")
	}
}

func TestPackRejects(t *testing.T) {
	tests := []struct {
		name string
		edit func(m *sterad.HostMessage)
		de   int
	}{
		{"PAN with letters", func(m *sterad.HostMessage) { m.PAN = "41111111ABCD1111" }, 2},
		{"PAN of 20 digits", func(m *sterad.HostMessage) { m.PAN = testPAN + "0000" }, 2},
		{"amount of 10^12", func(m *sterad.HostMessage) { m.Amount = jpy(1_000_000_000_000) }, 4},
		{"negative amount", func(m *sterad.HostMessage) { m.Amount = jpy(-1) }, 4},
		{"terminal ID of 9 characters", func(m *sterad.HostMessage) { m.TerminalID = "TERMINAL9" }, 41},
		{"terminal ID not ASCII", func(m *sterad.HostMessage) { m.TerminalID = "端末" }, 41},
		{"RF of 26 characters", func(m *sterad.HostMessage) { m.Reference = strings.Repeat("R", 26) }, 48},
		{"TI of 14 characters", func(m *sterad.HostMessage) { m.TI = "TI000000000001" }, 48},
		{"STAN over 999999", func(m *sterad.HostMessage) { m.STAN = 1_000_000 }, 11},
		{"MCC not digits", func(m *sterad.HostMessage) { m.MCC = "70A1" }, 18},
		{"batch over 999999", func(m *sterad.HostMessage) { m.Batch = 1_000_000 }, 60},
		{"original without STAN", func(m *sterad.HostMessage) {
			m.Original = &sterad.OriginalData{MTI: sterad.MTIAuthorization, Transmitted: tx}
		}, 90},
		{"MTI of 3 digits", func(m *sterad.HostMessage) { m.MTI = "100" }, 0},
		{"EC beside DE 2 and 14", func(m *sterad.HostMessage) { m.KSN, m.EncryptedCard = blockKSN1, blockData1 }, 48},
		{"EC beside DE 35", func(m *sterad.HostMessage) {
			m.PAN, m.Expiry, m.Track2 = "", sterad.Expiry{}, sterad.Sensitive("4111111111111111D28121010000012300")
			m.KSN, m.EncryptedCard = blockKSN1, blockData1
		}, 48},
		{"EC without KS", func(m *sterad.HostMessage) { m.PAN, m.Expiry, m.EncryptedCard = "", sterad.Expiry{}, blockData1 }, 48},
		{"KS without EC", func(m *sterad.HostMessage) { m.PAN, m.Expiry, m.KSN = "", sterad.Expiry{}, blockKSN1 }, 48},
		{"KS of 23 characters", func(m *sterad.HostMessage) {
			m.PAN, m.Expiry, m.KSN, m.EncryptedCard = "", sterad.Expiry{}, blockKSN1[1:], blockData1
		}, 48},
		{"EC of 961 characters", func(m *sterad.HostMessage) {
			m.PAN, m.Expiry, m.KSN, m.EncryptedCard = "", sterad.Expiry{}, blockKSN1, strings.Repeat("A", sterad.MaxEncryptedData+1)
		}, 48},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := goldenMessage("0100-preauth")
			tt.edit(m)
			b, err := protocol.Pack(m)
			if err == nil {
				t.Fatalf("Pack succeeded: %x", b)
			}
			assertFormatError(t, err, tt.de)
		})
	}
}

func TestUnpackRejects(t *testing.T) {
	preauth := func() *sterad.HostMessage { return goldenMessage("0100-preauth") }
	recon := func() *sterad.HostMessage { return goldenMessage("0500-reconciliation") }
	tests := []struct {
		name string
		data func(t *testing.T) []byte
		de   int
		// partial: Unpack also returns the message it read (the
		// structure is sound, a field's content is not).
		partial bool
	}{
		{"truncated DE 48", func(t *testing.T) []byte {
			return packWith(t, preauth(), setField(t, 48, "RF010RES-0"))
		}, 48, true},
		{"DE 48 tag with a non-numeric length", func(t *testing.T) []byte {
			return packWith(t, preauth(), setField(t, 48, "RF0x8RES-0042"))
		}, 48, true},
		{"DE 48 LD not a date", func(t *testing.T) []byte {
			return packWith(t, preauth(), setField(t, 48, "LD0162026023020260316"))
		}, 48, true},
		{"message over 4096 bytes", func(t *testing.T) []byte {
			return append(readGolden(t, "0100-preauth"), make([]byte, protocol.MaxMessageLength)...)
		}, -1, false},
		{"trailing bytes after the last field", func(t *testing.T) []byte {
			return append(readGolden(t, "0100-preauth"), "39"...)
		}, -1, false},
		{"bitmap announces a missing field", func(t *testing.T) []byte {
			b := readGolden(t, "0100-preauth")
			return b[:len(b)-3] // DE 49, the last field, is gone
		}, 49, false},
		{"secondary bitmap without a field 65–128", func(t *testing.T) []byte {
			b := readGolden(t, "0100-preauth")
			b[4] |= 0x80 // bit 1: an all-zero secondary bitmap follows
			return slices.Concat(b[:12], make([]byte, 8), b[12:])
		}, -1, false},
		{"LLVAR length not digits", func(t *testing.T) []byte {
			b := readGolden(t, "0100-preauth")
			copy(b[12:14], "1x") // DE 2's length prefix
			return b
		}, 2, false},
		{"PAN with letters", func(t *testing.T) []byte {
			return packWith(t, preauth(), setField(t, 2, "411111111111111X"))
		}, 2, true},
		{"non-digit STAN", func(t *testing.T) []byte {
			return packWith(t, preauth(), setField(t, 11, "00A001"))
		}, 11, true},
		{"STAN 000000", func(t *testing.T) []byte {
			return packWith(t, preauth(), setField(t, 11, "000000"))
		}, 11, true},
		{"DE 7 month 13", func(t *testing.T) []byte {
			return packWith(t, preauth(), setField(t, 7, "1314062958"))
		}, 7, true},
		{"DE 7 on 30 February", func(t *testing.T) []byte {
			return packWith(t, preauth(), setField(t, 7, "0230062958"))
		}, 7, true},
		{"DE 7 hour 24", func(t *testing.T) []byte {
			return packWith(t, preauth(), setField(t, 7, "0314242958"))
		}, 7, true},
		{"terminal ID with a control character", func(t *testing.T) []byte {
			return packWith(t, preauth(), setField(t, 41, "FD01\x00   "))
		}, 41, true},
		{"DE 97 does not match DE 86 and 88", func(t *testing.T) []byte {
			return packWith(t, recon(), setField(t, 97, "C0000000000057701"))
		}, 97, true},
		{"DE 97 with the wrong sign", func(t *testing.T) []byte {
			return packWith(t, recon(), setField(t, 97, "D0000000000057700"))
		}, 97, true},
		{"DE 12 missing beside DE 13", func(t *testing.T) []byte {
			return packWith(t, preauth(), func(msg *iso8583.Message) { msg.UnsetField(12) })
		}, 12, true},
		{"tag EC beside DE 2 and 14", func(t *testing.T) []byte {
			return packWith(t, preauth(), setField(t, 48, "KS024"+blockKSN1+"EC096"+blockData1))
		}, 48, true},
		{"tag EC beside DE 35", func(t *testing.T) []byte {
			return packWith(t, goldenMessage("0200-sale-swipe"), setField(t, 48, "KS024"+blockKSN1+"EC096"+blockData1))
		}, 48, true},
		{"tag EC without KS", func(t *testing.T) []byte {
			return packWith(t, goldenMessage("0200-sale-blind"), setField(t, 48, "EC096"+blockData1))
		}, 48, true},
		{"tag KS without EC", func(t *testing.T) []byte {
			return packWith(t, goldenMessage("0200-sale-blind"), setField(t, 48, "TR0011KS024"+blockKSN1))
		}, 48, true},
		{"tag EC with a control character", func(t *testing.T) []byte {
			return packWith(t, goldenMessage("0200-sale-blind"), setField(t, 48, "KS024"+blockKSN1+"EC002A\x00"))
		}, 48, true},
		{"DE 88 missing from the totals", func(t *testing.T) []byte {
			return packWith(t, recon(), func(msg *iso8583.Message) { msg.UnsetField(88) })
		}, 88, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := protocol.Unpack(tt.data(t), received)
			if err == nil {
				t.Fatal("Unpack succeeded")
			}
			assertFormatError(t, err, tt.de)
			if (m != nil) != tt.partial {
				t.Errorf("Unpack returned message %v, want one: %v", m != nil, tt.partial)
			}
		})
	}
}

// TestBlindSaleByHand checks the card-data-blind layout of
// docs/acquirer-protocol.md §8 byte by byte: no DE 2, 14 or 35 in the bitmap, and
// DE 48 carrying TR, KS and EC in table order, the block unchanged.
func TestBlindSaleByHand(t *testing.T) {
	b, err := protocol.Pack(goldenMessage("0200-sale-blind"))
	if err != nil {
		t.Fatal(err)
	}
	//   0x32 = 0011 0010: bits 3, 4, 7 (no DE 2)
	//   0x38 = 0011 1000: bits 11, 12, 13 (no DE 14)
	//   0x00 at bits 33–40: no DE 35; 0xc1: bits 41, 42, 48
	if want := []byte{0x32, 0x38, 0x44, 0x80, 0x00, 0xc1, 0x82, 0x10}; !bytes.Equal(b[4:12], want) {
		t.Errorf("bitmap %x, want %x", b[4:12], want)
	}
	de48 := "TR0011" + "KS024" + blockKSN2 + "EC096" + blockData2
	if want := fmt.Sprintf("%03d%s", len(de48), de48); !bytes.Contains(b, []byte(want)) {
		t.Errorf("DE 48 %q not in %x", want, b)
	}
	if bytes.Contains(b, []byte(testPAN.Reveal())) {
		t.Error("the blind sale carries the card number")
	}
}

func TestUnpackIgnoresUnknownDE48Tags(t *testing.T) {
	m := goldenMessage("0100-preauth")
	b := packWith(t, m, setField(t, 48, "ZZ003abcRF008RES-0042XY000LD0162026031420260316"))
	got, err := protocol.Unpack(b, received)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffMessages(m, got); len(d) > 0 {
		t.Errorf("unknown tags changed the message:\n%s", strings.Join(d, "\n"))
	}
}

// TestUnpackYear checks that DE 7 and DE 90, which carry no year, are read
// in the year closest to the time of reception.
func TestUnpackYear(t *testing.T) {
	tests := []struct {
		name string
		ref  time.Time
		de7  string
		want time.Time
	}{
		{"last second of the year read after New Year", time.Date(2027, 1, 1, 0, 0, 5, 0, time.UTC), "1231235959",
			time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)},
		{"New Year read just before it", time.Date(2026, 12, 31, 23, 59, 58, 0, time.UTC), "0101000001",
			time.Date(2027, 1, 1, 0, 0, 1, 0, time.UTC)},
		{"same day", time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC), "0701115959",
			time.Date(2026, 7, 1, 11, 59, 59, 0, time.UTC)},
		{"29 February of the next leap year", time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC), "0229000000",
			time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		{"reference in another zone", time.Date(2027, 1, 1, 9, 0, 5, 0, tokyo), "1231235959",
			time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := reversal(sterad.MTIReversal)
			b := packWith(t, m, func(msg *iso8583.Message) {
				setField(t, 7, tt.de7)(msg)
				setField(t, 90, "0100000001"+tt.de7+strings.Repeat("0", 22))(msg)
			})
			got, err := protocol.Unpack(b, tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Transmitted.Equal(tt.want) {
				t.Errorf("DE 7 = %v, want %v", got.Transmitted, tt.want)
			}
			if !got.Original.Transmitted.Equal(tt.want) {
				t.Errorf("DE 90 original DE 7 = %v, want %v", got.Original.Transmitted, tt.want)
			}
		})
	}
}
