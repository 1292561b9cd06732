package dukpt_test

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/sterad/sterad/simulator/dukpt"
)

// The standard's test data: BDK FEDCBA9876543210F1F1F1F1F1F1F1F1 and
// initial key ID 1234567890123456 (ANSI X9.24-3-2017 Annex B.1, quoted in
// docs/terminal-protocol.md §7).
const annexIKID = "1234567890123456"

func annexID(t *testing.T) dukpt.InitialKeyID {
	t.Helper()
	id, err := dukpt.ParseInitialKeyID(annexIKID)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func annexIK(t *testing.T) dukpt.Key {
	t.Helper()
	return mustKey(t, "1273671EA26AC29AFA4D1084127652A1")
}

func mustKey(t *testing.T, s string) dukpt.Key {
	t.Helper()
	k, err := dukpt.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func hexOf(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }

func keyHex(k dukpt.Key) string { return hexOf(k[:]) }

// Annex B.1 as docs/terminal-protocol.md §7 quotes it, and the derivation data of
// the initial key that Annex B.1 prints (01 01 8001 0002 0080 IKID).
func TestAnnexB1(t *testing.T) {
	id := annexID(t)
	if d := dukpt.InitialKeyDerivationData(id); hexOf(d[:]) != "01018001000200801234567890123456" {
		t.Errorf("initial key derivation data = %X", d)
	}
	ik := dukpt.DeriveInitialKey(dukpt.TestBDK(), id)
	if got := keyHex(ik); got != "1273671EA26AC29AFA4D1084127652A1" {
		t.Errorf("initial key = %s, want 1273671EA26AC29AFA4D1084127652A1", got)
	}
	ksn, err := dukpt.ParseKSN("123456789012345600000001")
	if err != nil {
		t.Fatal(err)
	}
	if got := keyHex(dukpt.DerivationKey(ik, ksn)); got != "4F21B565BAD9835E112B6465635EAE44" {
		t.Errorf("derivation key of counter 1 = %s, want 4F21B565BAD9835E112B6465635EAE44", got)
	}
}

// The derivation data of working and intermediate keys: usage, AES-128
// (0002), 128 bits (0080), derivation ID, counter.
func TestDerivationData(t *testing.T) {
	ksn := dukpt.NewKSN(annexID(t), 1)
	for _, tc := range []struct {
		usage dukpt.KeyUsage
		want  string
	}{
		{dukpt.UsageDataEncryptRequest, "01013000000200809012345600000001"},
		{dukpt.UsageDataEncryptResponse, "01013001000200809012345600000001"},
		{dukpt.UsagePINEncryption, "01011000000200809012345600000001"},
		{dukpt.UsageKeyDerivation, "01018000000200809012345600000001"},
	} {
		if d := dukpt.DerivationData(tc.usage, ksn); hexOf(d[:]) != tc.want {
			t.Errorf("usage %04X: derivation data %X, want %s", uint16(tc.usage), d, tc.want)
		}
	}
}

// The transaction (intermediate derivation) keys of the X9.24-3-2017
// supplement's test vectors for the AES-128 BDK, as quoted by
// openemv/dukpt test/dukpt_aes128_test.c: the first eight counters, the
// counters around the first skip (0x1FFFF has 17 one bits: no terminal
// uses it), and the last four counters a terminal uses.
func TestDerivationKeys(t *testing.T) {
	ik, id := annexIK(t), annexID(t)
	for _, tc := range []struct {
		counter uint32
		want    string
	}{
		{0x00000001, "4F21B565BAD9835E112B6465635EAE44"},
		{0x00000002, "2F34D68DE10F68D38091A73B9E7C437C"},
		{0x00000003, "031504E530365CF81264238540518318"},
		{0x00000004, "0EEFC7ADA628BA68878DA9165A8A1887"},
		{0x00000005, "C2A7AC328A5DA2D6002D62465BFC028B"},
		{0x00000006, "D30F7D9351DA58448A2F5E92B4EE3B7D"},
		{0x00000007, "A8253CEED9AC042C54F75D35C8352278"},
		{0x00000008, "718EE6CF0B27E53D5F7AF99C4D8146A2"},
		{0x0001FFFE, "E21E8C8D347F8561A2BE752DAA85A111"},
		{0x00020000, "F7AE9025468A25D37B7249CFFED224C8"},
		{0x00020001, "692C8EA4013645135B36497131DF9D2C"},
		{0xFFFE2000, "48E585B694EB0B18D5C35443E163C0BA"},
		{0xFFFE4000, "396C2C7CA1EA701C03B86B7D41F0C562"},
		{0xFFFE8000, "0387625F189B58AE03EF0E8CCA41105E"},
		{0xFFFF0000, "F6BA59389BD14A9855BE9727E7C52E3C"},
	} {
		if got := keyHex(dukpt.DerivationKey(ik, dukpt.NewKSN(id, tc.counter))); got != tc.want {
			t.Errorf("counter %08X: derivation key %s, want %s", tc.counter, got, tc.want)
		}
	}
}

// The intermediate derivation key register of a freshly loaded terminal
// (one key per single-bit counter 1<<i), as quoted by
// joyner-perez/aes_dukpt_x9.24-3-2017 DukptTests.testGenerate32IntermediateGenerationKeys.
func TestSingleBitDerivationKeys(t *testing.T) {
	want := []string{
		"4F21B565BAD9835E112B6465635EAE44", "2F34D68DE10F68D38091A73B9E7C437C",
		"0EEFC7ADA628BA68878DA9165A8A1887", "718EE6CF0B27E53D5F7AF99C4D8146A2",
		"7459762EED7F51D08567ED6598DFBEA2", "1ED39390B4448C69819EB55F4C616564",
		"C13BDA0A56D6998E544E0A10A3D979DA", "089F6B989CA13D49A6A0317F85460CE5",
		"065355A6A3DD4C2260BDDDFA0C16704E", "CF16FEBC5CFD1A741A3280564A9681F2",
		"4BF8EB1DAF9F4244332ED01663EB654E", "492248FEE0FE87E8B5DB7BB2AC7BC955",
		"18690547EB19D28EFAF5EF6D22C271AA", "84F4CCA45C4F1D4E063F1CE5B95B6C7F",
		"4EC5FC0C3CD62AFF174A37B6FDC2B0D9", "9EF99A4D5FD548A23D299074047F7F6B",
		"F4C6237DB49E28BF96E6A18CD8CDDA00", "F7AE9025468A25D37B7249CFFED224C8",
		"579594A986E87917382A181576FA7A9A", "5AAF46AAD7593E0D224E05E13629ED1E",
		"5787EB837B6FFB3AF24759F8625CEC19", "988A3AB89B9332A15D0BE2C54C279923",
		"E55171636976BDC5758A6FA4C25F0008", "DF16D5BAC52FFA7564D7DBD2DE7C6CCF",
		"145E8C933FC0D61900592035CF18A5AF", "FBDF917E209B42F9DB8843D18BEE8033",
		"61C70779F920BBD37815C21B5A1A7B75", "97D7BB3FC342B9E961308BB8B801775B",
		"69B453118411404DB54AE2B751F02F43", "7CCE4E679F4FC3478E3CD4509D64A7F3",
		"36AF4AA9FC1100B2AE7742101540340A", "9DC56486499A2E857FDEFC4740641EA8",
	}
	ik, id := annexIK(t), annexID(t)
	for i, w := range want {
		if got := keyHex(dukpt.DerivationKey(ik, dukpt.NewKSN(id, 1<<i))); got != w {
			t.Errorf("counter 1<<%d: derivation key %s, want %s", i, got, w)
		}
	}
}

// Working keys of the supplement's vectors, from the BDK (the host) and
// from the initial key (the terminal), which must agree.
func TestWorkingKeys(t *testing.T) {
	const (
		pin  = dukpt.UsagePINEncryption
		macG = dukpt.UsageMACGeneration
		data = dukpt.UsageDataEncryptRequest
	)
	cases := []struct {
		counter uint32
		usage   dukpt.KeyUsage
		want    string
	}{
		// joyner-perez/aes_dukpt_x9.24-3-2017 DukptTests.testHostDeriveWorkingKeyPinEncryption
		// (PIN, MAC generation, data encryption at counters 1, 2, 3, 7,
		// 0x20001, 8675309 and the last, 0xFFFF0000) and
		// testGenerateKeyEncryption (data encryption at counters 1 to 8).
		{1, pin, "AF8CB133A78F8DC2D1359F18527593FB"},
		{2, pin, "D30BDC73EC9714B000BEC66BDB7B6D09"},
		{3, pin, "7D69F01F3B45449F62C7816ECE723268"},
		{7, pin, "6ECF912F3B18CA11A7A27BB60705FD09"},
		{0x20001, pin, "8AC85C93EED246054ADC3104479115A6"},
		{8675309, pin, "D1DDA386AA4A556AF0119FDCB5D132C6"},
		{0xFFFF0000, pin, "27EFAC1D158632588F4AC69E45C247C4"},
		{1, macG, "A2DC23DE6FDE0824A2BC321E08E4B8B7"},
		{2, macG, "484C3B06E8562704528CD5B46FB12FB6"},
		{3, macG, "A5DF7D9D800CA769766F0C77CA4E6E6C"},
		{7, macG, "BAA08CA263C69525BC6B1BA8F4275D69"},
		{0x20001, macG, "EF7C9461E2AFED2A8012CC6301CFEEBE"},
		{8675309, macG, "89365C7970950CAC0A6261FFC7DB26C6"},
		{0xFFFF0000, macG, "AE558BABC206D303FDF68B1181F228C6"},
		{1, data, "A35C412EFD41FDB98B69797C02DCD08F"},
		{2, data, "D639514AA33AC43AD9229E433D6D4E5B"},
		{3, data, "EF17F6AB45B4820C93A3DCB21BC491AD"},
		{4, data, "B3BD44C08BB6BA27C3BB4711D7D70387"},
		{5, data, "CA02DF6F30B39E14BD0B4A30E460920F"},
		{6, data, "C9B8A7C4E486180B2229115164F0B293"},
		{7, data, "0FA8F1F0A2DD7B1005A862D77CDED698"},
		{8, data, "650F34204ABD4E57764D61AC3D266FB1"},
		{0x20001, data, "B93B4BF0D52163B3CF9312F8E55629A3"},
		{8675309, data, "B1E4D9006A87DD08D87F11A124D35517"},
		{0xFFFF0000, data, "08878BFCC45CA5AEF6A1AB40BAC882B5"},
		// Around the first skip, and PIN at counter 8: as quoted by the
		// AES-128 vectors of a Rust paysec_dukpt test suite and a
		// CyberChef payments fork's tests (found by the code search).
		{8, pin, "4D9DF3FBEE3448FC3E676D04320A90F5"},
		{0x1FFFE, pin, "DDF7E08A84B5478C498D007C743BF762"},
		{0x1FFFE, data, "8E4E5D5E0F01C54F01F4ACA1C8F8EDCE"},
		{0x20000, pin, "AB828BE7B58C7EC5D5ED0D5D320A0C9D"},
		{0x20000, data, "13361208975755318FE7AE28C9616014"},
		// Every usage at counter 1, quoted alike by that Rust suite and a
		// C# one (CryptoScript DukptAesWorkingKeyTests).
		{1, dukpt.UsageKeyEncryption, "36A724B7BEFA5A25F5E7B5782A4554A2"},
		{1, dukpt.UsageMACVerification, "DBB463945B286C07CD3AD82EE96FD9C9"},
		{1, dukpt.UsageMACBothWays, "85675439D18D7F1158BD8E3EAA3D502B"},
		{1, dukpt.UsageDataEncryptResponse, "16292C6EA8F64C5420A0584BFBC577BE"},
		{1, dukpt.UsageDataEncryptBothWays, "A308E080DD15A1B741F1721BF67DE11C"},
		{1, dukpt.UsageKeyDerivation, "30E54D3C69B22501A7FC43969D81D5C0"},
	}
	bdk, ik, id := dukpt.TestBDK(), annexIK(t), annexID(t)
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%08X/%04X", tc.counter, uint16(tc.usage)), func(t *testing.T) {
			ksn := dukpt.NewKSN(id, tc.counter)
			if got := keyHex(dukpt.DeriveWorkingKey(bdk, ksn, tc.usage)); got != tc.want {
				t.Errorf("host (BDK) working key %s, want %s", got, tc.want)
			}
			if got := keyHex(dukpt.WorkingKey(ik, ksn, tc.usage)); got != tc.want {
				t.Errorf("terminal (initial key) working key %s, want %s", got, tc.want)
			}
		})
	}
}

// The data encryption of the card block (zero padding, AES-CBC, zero IV)
// against another implementation: moov-io/dukpt pkg/aes/aes_test.go
// encrypts "4012345678909D987" this way under the request (0x3000) and
// response (0x3001) data keys of the first eight KSNs. Its first
// request vector was also checked with `openssl enc -aes-128-cbc -nopad`.
func TestDataEncryptionAgainstMoov(t *testing.T) {
	plain := []byte("4012345678909D987")
	vectors := []struct{ request, response string }{
		{"E5AFA5B408A3310E3D779C8A9A2AE29448BD5B4232582090DB703AF647205A79", "84904DFC6B5201A4F1FE2EAA49E70B8C01838EF53030790FF785D630AB3916B4"},
		{"A17A9658EE0F451D6CA11B65B592EF9C5F90BB175D926F1457B63B3273042476", "699ED7BC85994F1C11DE1C40177A629530E85262EA0B02FB80771255DC1F65B6"},
		{"E289C32A084A39419A6C147DE40B53A67BABE2BD22DC3D5EE09B002E83B93ACE", "0F440D9321C1ABBEF9CA7008B40CF18B3045A84D5435D6CF9A4955E3451C49E9"},
		{"D074C0F81866781B92D008C8EA6A3947319B94361C7ECD3C1736020E0D57E629", "08A3D4FB24E9CA4864F63E1AB518C69327D87A6A709B9336E3E60FA7F312759A"},
		{"8F222D79AE7F942BF74D3EA9E364C0000D0C94AD7EA0A8CCF23330FCA4B1D0D0", "400E67A22795467C145D7A5D2475DFD8041C233C6E2D004CEDBEBA25AE5CE1A7"},
		{"19C254B0498CBD32E597D882B7D993513994EE913836E65711EA41F8D4B34728", "1524F027685DCDA7197E0DE3CB87EF83C6D61D2E483D47678C4914DEC2320B08"},
		{"0710C8F0EB136629E30ADFB148562F6F80B786EC1074428B7C7511B7301EAAF0", "8CA084F21F599C7361C8F2B1565D993779C62EC3496F0113DF17B5C29EA4E404"},
		{"304EC254A7B528D9892E47F7C1315D498C0D88EA8CD71CA52D38F362721AEA67", "8CD1A54538B9DC79A5DF4544ADE8D1F1A085AC1F89AA59BFF49351A68957DE1B"},
	}
	bdk, id := dukpt.TestBDK(), annexID(t)
	for i, v := range vectors {
		ksn := dukpt.NewKSN(id, uint32(i+1))
		for _, u := range []struct {
			usage dukpt.KeyUsage
			want  string
		}{{dukpt.UsageDataEncryptRequest, v.request}, {dukpt.UsageDataEncryptResponse, v.response}} {
			key := dukpt.DeriveWorkingKey(bdk, ksn, u.usage)
			ct := dukpt.EncryptData(key, plain)
			if got := hexOf(ct); got != u.want {
				t.Errorf("KSN %s usage %04X: %s, want %s", ksn, uint16(u.usage), got, u.want)
			}
			back := dukpt.DecryptData(key, ct)
			if want := append([]byte(string(plain)), make([]byte, 32-len(plain))...); string(back) != string(want) {
				t.Errorf("KSN %s usage %04X: decrypts to %X", ksn, uint16(u.usage), back)
			}
		}
	}
}
