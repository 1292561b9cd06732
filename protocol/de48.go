package protocol

import (
	"errors"
	"fmt"
	"strings"
)

// DE 48 tags (docs/acquirer-protocol.md §4): a 2-character name, a 3-digit length,
// then the value. The table tags in fields.go says how each one is written
// and read.
const (
	TagReference   = "RF"
	TagLodging     = "LD"
	TagMerchantIni = "MI"
	TagTI          = "TI"
	TagWantToken   = "TR"
	TagToken       = "TK"
	TagStandIn     = "SI"
	TagReversal    = "RR"
	TagBatchUpload = "BU"
	TagKSN         = "KS"
	TagEncrypted   = "EC"
)

// check says whether v is a valid value of t.
func (t *tag) check(v string) error {
	if len(v) < t.min || len(v) > t.max || !t.chars.valid(v) {
		return fmt.Errorf("tag %s must be %d to %d characters", t.name, t.min, t.max)
	}
	return nil
}

// encodeDE48 writes the tags of m in table order; DE 48's layout checks the
// total length.
func encodeDE48(m *hostMsg) (string, error) {
	var b strings.Builder
	for i := range tags {
		t := &tags[i]
		v, err := t.put(m)
		if err == nil && v != "" {
			err = t.check(v)
		}
		if err != nil {
			return "", err
		}
		if v == "" {
			continue
		}
		var length [3]byte
		b.Grow(5 + len(v))
		b.WriteString(t.name)
		b.Write(appendZeroFilled(length[:0], int64(len(v)), 3))
		b.WriteString(v)
	}
	return b.String(), nil
}

// decodeDE48 reads the tags of s into m, skipping unknown ones.
func decodeDE48(m *hostMsg, s string, w *wireMessage) error {
	for len(s) > 0 {
		if len(s) < 5 {
			return fmt.Errorf("truncated tag header")
		}
		name, length := s[:2], s[2:5]
		if !isDigits(length, 3) {
			return fmt.Errorf("tag %q has a non-numeric length", sanitizeTag(name))
		}
		n := int(atoi(length))
		if len(s) < 5+n {
			return fmt.Errorf("tag %q is truncated", sanitizeTag(name))
		}
		v := s[5 : 5+n]
		s = s[5+n:]
		t := tagNamed(name)
		if t == nil {
			continue // unknown tags are ignored
		}
		if err := t.check(v); err != nil {
			return err
		}
		if err := t.get(m, v, w); err != nil {
			return err
		}
	}
	if (m.KSN == "") != (m.EncryptedCard == "") {
		return errKSNWithEC
	}
	return nil
}

// errKSNWithEC: tags KS and EC come together or not at all.
var errKSNWithEC = errors.New("tags KS and EC go together")

// cardDEs are the data elements an encrypted card (tag EC) replaces.
var cardDEs = []int{2, 14, 35}

// encryptedCard is tag EC: an encrypting terminal's card block, hex,
// passed on unchanged with its KSN (tag KS) instead of DE 2, 14 and 35
// (docs/acquirer-protocol.md §8).
func encryptedCard(m *hostMsg) (string, error) {
	switch {
	case (m.KSN == "") != (m.EncryptedCard == ""):
		return "", errKSNWithEC
	case m.EncryptedCard != "" && (m.PAN != "" || !m.Expiry.IsZero() || len(m.Track2) > 0):
		return "", errors.New("tag EC replaces DE 2, 14 and 35: a message carries one or the other")
	}
	return m.EncryptedCard, nil
}

func setEncryptedCard(m *hostMsg, v string, w *wireMessage) error {
	for _, de := range cardDEs {
		if _, ok := w.value(de); ok {
			return fmt.Errorf("tag EC replaces DE 2, 14 and 35: DE %d is present", de)
		}
	}
	m.EncryptedCard = v
	return nil
}

func tagNamed(name string) *tag {
	for i := range tags {
		if tags[i].name == name {
			return &tags[i]
		}
	}
	return nil
}

func sanitizeTag(t string) string {
	if isPrintableASCII(t) {
		return t
	}
	return "??"
}
