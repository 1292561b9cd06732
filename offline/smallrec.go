package offline

import (
	"encoding/hex"
	"encoding/json"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sterad/sterad"
)

// An idempotency record (bucket idem, keyed by the idempotency key, which
// the record does not repeat): fmtIdem, then the fields
//
//	2 fingerprint        string, when it is not lowercase hex
//	3 fingerprint        the bytes the lowercase hex spells (a MAC: half the room)
//	4 transaction ID     string
//	5 created at         Timestamp (record.go)
const (
	idemFingerprint    protowire.Number = 2
	idemFingerprintHex protowire.Number = 3
	idemTxnID          protowire.Number = 4
	idemCreatedAt      protowire.Number = 5
)

// encodeIdem encodes r, to be stored under r.Key.
func encodeIdem(r *sterad.IdempotencyRecord) []byte {
	b := make([]byte, 0, 96)
	b = append(b, fmtIdem)
	if isLowerHex(r.Fingerprint) {
		n := len(r.Fingerprint) / 2
		b = protowire.AppendVarint(protowire.AppendTag(b, idemFingerprintHex, protowire.BytesType), uint64(n))
		b, _ = hex.AppendDecode(b, []byte(r.Fingerprint))
	} else {
		b = appendString(b, idemFingerprint, r.Fingerprint)
	}
	b = appendString(b, idemTxnID, r.TxnID)
	return appendTime(b, idemCreatedAt, r.CreatedAt, timeBase{})
}

// isLowerHex reports whether s is a non-empty even number of lowercase hex
// digits: what hex.EncodeToString gives back.
func isLowerHex(s string) bool {
	if s == "" || len(s)%2 != 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// decodeIdem decodes a stored idempotency record (either encoding) stored
// under key.
func decodeIdem(key, v []byte) (*sterad.IdempotencyRecord, error) {
	r := new(sterad.IdempotencyRecord)
	if len(v) > 0 && v[0] == fmtJSON {
		if err := json.Unmarshal(v, r); err != nil {
			return nil, err
		}
		return r, nil
	}
	if len(v) == 0 || v[0] != fmtIdem {
		return nil, badFormat("idempotency", v)
	}
	r.Key = string(key)
	m := &reader{rec: v, pos: 1, end: len(v)}
	for m.next() {
		switch m.num {
		case idemFingerprint:
			r.Fingerprint = m.string()
		case idemFingerprintHex:
			r.Fingerprint = hex.EncodeToString(m.bytes())
		case idemTxnID:
			r.TxnID = m.string()
		case idemCreatedAt:
			r.CreatedAt = m.time(timeBase{})
		default:
			m.skip()
		}
	}
	if m.err != nil {
		return nil, malformed("idempotency", "%v", m.err)
	}
	return r, nil
}

// A queue item (bucket queue, keyed by be64 Seq): fmtQueue, then the
// fields below. LastAttempt is relative to CreatedAt.
const (
	queueSeq         protowire.Number = 1
	queueTxnID       protowire.Number = 2
	queueKind        protowire.Number = 3
	queueCreatedAt   protowire.Number = 4
	queueAttempts    protowire.Number = 5
	queueLastAttempt protowire.Number = 6
	queueLastError   protowire.Number = 7
	queueParked      protowire.Number = 8
	queueBlock       protowire.Number = 9 // EncryptedBlock {1 KSN, 2 data}
)

// encodeQueueItem encodes it.
func encodeQueueItem(it *sterad.QueueItem) []byte {
	b := make([]byte, 0, 96)
	b = append(b, fmtQueue)
	b = appendUint(b, queueSeq, it.Seq)
	b = appendString(b, queueTxnID, it.TxnID)
	b = appendSym(b, queueKind, queueCodes, string(it.Kind))
	b = appendTime(b, queueCreatedAt, it.CreatedAt, timeBase{})
	b = appendInt(b, queueAttempts, int64(it.Attempts))
	b = appendTime(b, queueLastAttempt, it.LastAttempt, baseOf(it.CreatedAt))
	b = appendString(b, queueLastError, it.LastError)
	b = appendBool(b, queueParked, it.Parked)
	if e := it.Block; e != nil {
		b = appendMessage(b, queueBlock, true, func(b []byte) []byte {
			b = appendString(b, 1, e.KSN)
			return appendString(b, 2, e.Data)
		})
	}
	return b
}

// decodeQueueItem decodes a stored queue item (either encoding).
func decodeQueueItem(v []byte) (sterad.QueueItem, error) {
	var it sterad.QueueItem
	if len(v) > 0 && v[0] == fmtJSON {
		err := json.Unmarshal(v, &it)
		return it, err
	}
	if len(v) == 0 || v[0] != fmtQueue {
		return it, badFormat("queue item", v)
	}
	m := &reader{rec: v, pos: 1, end: len(v)}
	// CreatedAt is LastAttempt's base: it comes first, but read it first
	// whatever the order.
	var lastAttempt *reader
	for m.next() {
		switch m.num {
		case queueSeq:
			it.Seq = m.uint()
		case queueTxnID:
			it.TxnID = m.string()
		case queueKind:
			it.Kind = sterad.QueueKind(m.sym(queueCodes))
		case queueCreatedAt:
			it.CreatedAt = m.time(timeBase{})
		case queueAttempts:
			it.Attempts = m.int()
		case queueLastAttempt:
			lastAttempt = &reader{rec: v, pos: m.pos, end: len(v), num: m.num, typ: m.typ}
			m.skip()
		case queueLastError:
			it.LastError = m.string()
		case queueParked:
			it.Parked = m.bool()
		case queueBlock:
			e := new(sterad.EncryptedBlock)
			s := m.sub()
			for s.next() {
				switch s.num {
				case 1:
					e.KSN = s.string()
				case 2:
					e.Data = s.string()
				default:
					s.skip()
				}
			}
			if s.err != nil {
				m.fail(s.err)
			}
			it.Block = e
		default:
			m.skip()
		}
	}
	if lastAttempt != nil && m.err == nil {
		it.LastAttempt = lastAttempt.time(baseOf(it.CreatedAt))
		m.err = lastAttempt.err
	}
	if m.err != nil {
		return sterad.QueueItem{}, malformed("queue item", "%v", m.err)
	}
	return it, nil
}
