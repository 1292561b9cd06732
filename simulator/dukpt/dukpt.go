package dukpt

import (
	"crypto/aes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

// KeySize is the size in bytes of every key of this package: AES-128.
const KeySize = 16

// MaxOneBits is the most one bits a transaction counter may have
// (MAX_WORK of X9.24-3-2017): a terminal skips the other counters.
const MaxOneBits = 16

// The standard's own test data (X9.24-3-2017 Annex B, docs/terminal-protocol.md §7).
// The BDK is public: never use it for anything but simulators and tests.
const (
	TestBDKHex = "FEDCBA9876543210F1F1F1F1F1F1F1F1"
	// TestBDKID is the BDK ID simulated terminals put in their initial key ID.
	TestBDKID uint32 = 0x12345678
)

// TestBDK returns the standard's public test BDK (Annex B).
func TestBDK() BDK {
	b, err := ParseBDK(TestBDKHex)
	if err != nil {
		panic(err) // a constant: cannot happen
	}
	return b
}

// BDK is an AES-128 base derivation key. Only a host (the test acquirer)
// holds one; a terminal gets the initial key derived from it. It does not
// print: every fmt verb shows a placeholder.
type BDK [KeySize]byte

// ParseBDK reads a BDK from 32 hex digits.
func ParseBDK(s string) (BDK, error) {
	var b BDK
	if err := decodeHex(b[:], s); err != nil {
		return BDK{}, errors.New("dukpt: a BDK is 32 hex digits")
	}
	return b, nil
}

// Format hides the key under every fmt verb.
func (BDK) Format(f fmt.State, _ rune) { fmt.Fprint(f, "dukpt.BDK(hidden)") }

// Key is an AES-128 key of DUKPT: an initial key, an intermediate
// derivation key or a working key. It does not print: every fmt verb shows
// a placeholder.
type Key [KeySize]byte

// ParseKey reads a key from 32 hex digits.
func ParseKey(s string) (Key, error) {
	var k Key
	if err := decodeHex(k[:], s); err != nil {
		return Key{}, errors.New("dukpt: a key is 32 hex digits")
	}
	return k, nil
}

// Format hides the key under every fmt verb.
func (Key) Format(f fmt.State, _ rune) { fmt.Fprint(f, "dukpt.Key(hidden)") }

// KeyUsage is the key usage indicator of the derivation data (X9.24-3-2017
// "Create Derivation Data", §6.3.3).
type KeyUsage uint16

// Key usages. Card data uses UsageDataEncryptRequest.
const (
	UsageKeyEncryption       KeyUsage = 0x0002
	UsagePINEncryption       KeyUsage = 0x1000
	UsageMACGeneration       KeyUsage = 0x2000
	UsageMACVerification     KeyUsage = 0x2001
	UsageMACBothWays         KeyUsage = 0x2002
	UsageDataEncryptRequest  KeyUsage = 0x3000 // "data encryption, encrypt": terminal to host
	UsageDataEncryptResponse KeyUsage = 0x3001 // "data encryption, decrypt": host to terminal
	UsageDataEncryptBothWays KeyUsage = 0x3002
	UsageKeyDerivation       KeyUsage = 0x8000 // intermediate derivation keys
	UsageInitialKey          KeyUsage = 0x8001 // the initial key, from the BDK
)

// The derivation data's fixed fields for an AES-128 key (§6.3.3).
const (
	derivationVersion      = 0x01
	keyBlockCounter        = 0x01   // one block: a 128-bit key
	algorithmAES128        = 0x0002 // algorithm indicator
	keyLengthAES128   uint = 128    // bits
)

// InitialKeyID identifies a terminal's initial key: the 4-byte BDK ID,
// then the 4-byte derivation ID.
type InitialKeyID [8]byte

// NewInitialKeyID builds an initial key ID from its two halves.
func NewInitialKeyID(bdkID, derivationID uint32) InitialKeyID {
	var id InitialKeyID
	binary.BigEndian.PutUint32(id[:4], bdkID)
	binary.BigEndian.PutUint32(id[4:], derivationID)
	return id
}

// ParseInitialKeyID reads an initial key ID from 16 uppercase hex digits.
func ParseInitialKeyID(s string) (InitialKeyID, error) {
	var id InitialKeyID
	if err := decodeUpperHex(id[:], s); err != nil {
		return InitialKeyID{}, errors.New("dukpt: an initial key ID is 16 uppercase hex digits")
	}
	return id, nil
}

// BDKID is the first half: which BDK the initial key comes from.
func (id InitialKeyID) BDKID() uint32 { return binary.BigEndian.Uint32(id[:4]) }

// DerivationID is the second half: which terminal.
func (id InitialKeyID) DerivationID() uint32 { return binary.BigEndian.Uint32(id[4:]) }

// String formats 16 uppercase hex digits.
func (id InitialKeyID) String() string { return strings.ToUpper(hex.EncodeToString(id[:])) }

// DerivationID is the simulators' convention for a terminal's derivation
// ID (docs/terminal-protocol.md §7): the first 4 bytes of SHA-256 of its terminal ID.
func DerivationID(terminalID string) uint32 {
	sum := sha256.Sum256([]byte(terminalID))
	return binary.BigEndian.Uint32(sum[:4])
}

// KSN is an AES DUKPT key serial number: the 8-byte initial key ID, then
// the 4-byte transaction counter. Its text form is 24 uppercase hex digits.
type KSN [12]byte

// NewKSN builds the KSN of a transaction counter.
func NewKSN(id InitialKeyID, counter uint32) KSN {
	var k KSN
	copy(k[:8], id[:])
	binary.BigEndian.PutUint32(k[8:], counter)
	return k
}

// ErrKSN reports a KSN that is not 24 uppercase hex digits, or whose
// counter no terminal issues (zero, or more than 16 one bits).
var ErrKSN = errors.New("dukpt: invalid KSN")

// ParseKSN reads a KSN from exactly 24 uppercase hex digits (lowercase is
// refused: one KSN has one text form, so a host that remembers the KSNs it
// saw cannot be fooled by a change of case).
func ParseKSN(s string) (KSN, error) {
	var k KSN
	if err := decodeUpperHex(k[:], s); err != nil {
		return KSN{}, fmt.Errorf("%w: not 24 uppercase hex digits", ErrKSN)
	}
	return k, nil
}

// InitialKeyID is the KSN's first 8 bytes.
func (k KSN) InitialKeyID() InitialKeyID { return InitialKeyID(k[:8]) }

// Counter is the transaction counter.
func (k KSN) Counter() uint32 { return binary.BigEndian.Uint32(k[8:]) }

// String formats 24 uppercase hex digits.
func (k KSN) String() string { return strings.ToUpper(hex.EncodeToString(k[:])) }

// MarshalText formats 24 uppercase hex digits (so a KSN is a JSON string).
func (k KSN) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText is ParseKSN.
func (k *KSN) UnmarshalText(b []byte) error {
	v, err := ParseKSN(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// ValidCounter reports whether a terminal may use counter for a
// transaction: not zero (the initial key's own position) and at most
// MaxOneBits one bits.
func ValidCounter(counter uint32) bool {
	return counter != 0 && bits.OnesCount32(counter) <= MaxOneBits
}

// NextCounter returns the counter a terminal uses after last (0 before
// its first transaction): the smallest greater counter with at most
// MaxOneBits one bits. ok is false when none is left: the terminal is
// exhausted (after 0xFFFF0000) and needs a new initial key.
func NextCounter(last uint32) (next uint32, ok bool) {
	n := uint64(last) + 1
	// Every number from n up to n+lowbit(n)-1 has all of n's one bits: when
	// n has too many, so do they, and the next candidate is n+lowbit(n).
	// This is the standard's terminal rule: a counter with
	// MAX_WORK one bits is followed by counter + its lowest one bit.
	for bits.OnesCount64(n) > MaxOneBits {
		n += n & -n
	}
	if n > 0xFFFFFFFF {
		return 0, false
	}
	return uint32(n), true
}

// InitialKeyDerivationData is the derivation data of a terminal's initial
// key (§6.3.3, usage 0x8001): the whole initial key ID in bytes 8 to 15.
func InitialKeyDerivationData(id InitialKeyID) [16]byte {
	d := derivationHeader(UsageInitialKey)
	copy(d[8:], id[:])
	return d
}

// DerivationData is the derivation data of a key for usage at ksn's
// counter (§6.3.3): bytes 8 to 15 are the KSN's rightmost 8 bytes, the
// derivation ID and the counter. Intermediate derivation keys use
// UsageKeyDerivation with the counter built so far.
func DerivationData(usage KeyUsage, ksn KSN) [16]byte {
	d := derivationHeader(usage)
	copy(d[8:], ksn[4:])
	return d
}

func derivationHeader(usage KeyUsage) [16]byte {
	var d [16]byte
	d[0] = derivationVersion
	d[1] = keyBlockCounter
	binary.BigEndian.PutUint16(d[2:], uint16(usage))
	binary.BigEndian.PutUint16(d[4:], algorithmAES128)
	binary.BigEndian.PutUint16(d[6:], uint16(keyLengthAES128))
	return d
}

// deriveKey is the standard's DeriveKey for an AES-128 result: the
// derivation data encrypted (AES-ECB, one block) under the derivation key.
func deriveKey(derivationKey [KeySize]byte, data [16]byte) Key {
	c, err := aes.NewCipher(derivationKey[:])
	if err != nil {
		panic(err) // 16 bytes: cannot happen
	}
	var k Key
	c.Encrypt(k[:], data[:])
	return k
}

// DeriveInitialKey derives a terminal's initial key from the BDK (§6.3.1).
// The key is loaded into the terminal; the BDK never is.
func DeriveInitialKey(bdk BDK, id InitialKeyID) Key {
	return deriveKey(bdk, InitialKeyDerivationData(id))
}

// DerivationKey derives the intermediate derivation key of ksn's counter
// from the terminal's initial key: one derivation per one bit of the
// counter, the most significant first, each under the key of the bits
// before (§6.3.1, "transaction key" in the supplement's vectors).
func DerivationKey(initialKey Key, ksn KSN) Key {
	key := initialKey
	counter := ksn.Counter()
	var working uint32
	for mask := uint32(1) << 31; mask != 0; mask >>= 1 {
		if counter&mask == 0 {
			continue
		}
		working |= mask
		key = deriveKey(key, DerivationData(UsageKeyDerivation, NewKSN(ksn.InitialKeyID(), working)))
	}
	return key
}

// WorkingKey derives the AES-128 working key for usage at ksn from the
// terminal's initial key: what the terminal computes.
func WorkingKey(initialKey Key, ksn KSN, usage KeyUsage) Key {
	return deriveKey(DerivationKey(initialKey, ksn), DerivationData(usage, ksn))
}

// DeriveWorkingKey derives the AES-128 working key for usage at ksn from
// the BDK: what the host computes (§6.3.1: the initial key of ksn's
// initial key ID, then WorkingKey). It derives a key for any counter; a
// host that decrypts checks ValidCounter first (Decrypt does).
func DeriveWorkingKey(bdk BDK, ksn KSN, usage KeyUsage) Key {
	return WorkingKey(DeriveInitialKey(bdk, ksn.InitialKeyID()), ksn, usage)
}

func decodeHex(dst []byte, s string) error {
	if len(s) != 2*len(dst) {
		return errors.New("length")
	}
	_, err := hex.Decode(dst, []byte(s))
	return err
}

func decodeUpperHex(dst []byte, s string) error {
	if strings.ContainsAny(s, "abcdef") {
		return errors.New("lowercase")
	}
	return decodeHex(dst, s)
}
