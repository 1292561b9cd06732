package protocol

import (
	"strconv"
	"strings"

	"github.com/sterad/sterad"
)

// DE 48 tags (acquirer-host.md §4): a 2-character name, a 3-digit length,
// then the value. Tags are written in this order; unknown tags are skipped
// when reading.
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
)

type tagRule struct {
	min, max int
	digits   bool // n: digits only
}

var tagRules = map[string]tagRule{
	TagReference:   {1, 25, false},
	TagLodging:     {16, 16, true},
	TagMerchantIni: {2, 2, false},
	TagTI:          {15, 15, false},
	TagWantToken:   {1, 1, true},
	TagToken:       {16, 16, false},
	TagStandIn:     {1, 1, true},
	TagReversal:    {2, 2, false},
	TagBatchUpload: {1, 1, true},
}

func encodeDE48(m *sterad.HostMessage) (string, error) {
	var b strings.Builder
	put := func(tag, v string) error {
		if v == "" {
			return nil
		}
		r := tagRules[tag]
		if len(v) < r.min || len(v) > r.max || !isPrintableASCII(v) || (r.digits && !isDigits(v, len(v))) {
			return formatErr(48, "tag %s must be %d to %d characters", tag, r.min, r.max)
		}
		b.WriteString(tag)
		b.WriteString(zeroFill(int64(len(v)), 3))
		b.WriteString(v)
		return nil
	}
	flag := func(on bool) string {
		if on {
			return "1"
		}
		return ""
	}
	ld := ""
	if m.Stay != nil {
		ld = m.Stay.CheckIn.Compact() + m.Stay.CheckOut.Compact()
	}
	for _, t := range []struct{ tag, v string }{
		{TagReference, m.Reference},
		{TagLodging, ld},
		{TagMerchantIni, m.MerchantInitiated},
		{TagTI, m.TI},
		{TagWantToken, flag(m.WantToken)},
		{TagToken, m.Token},
		{TagStandIn, flag(m.StandIn)},
		{TagReversal, m.ReversalReason},
		{TagBatchUpload, flag(m.BatchUpload)},
	} {
		if err := put(t.tag, t.v); err != nil {
			return "", err
		}
	}
	if b.Len() > 999 {
		return "", formatErr(48, "longer than 999 characters")
	}
	return b.String(), nil
}

func decodeDE48(s string, m *sterad.HostMessage) error {
	for len(s) > 0 {
		if len(s) < 5 {
			return formatErr(48, "truncated tag header")
		}
		tag, lenStr := s[:2], s[2:5]
		n, err := strconv.Atoi(lenStr)
		if !isDigits(lenStr, 3) || err != nil {
			return formatErr(48, "tag %q has a non-numeric length", sanitizeTag(tag))
		}
		if len(s) < 5+n {
			return formatErr(48, "tag %q is truncated", sanitizeTag(tag))
		}
		v := s[5 : 5+n]
		s = s[5+n:]
		r, known := tagRules[tag]
		if !known {
			continue // unknown tags are ignored
		}
		if n < r.min || n > r.max || !isPrintableASCII(v) || (r.digits && !isDigits(v, n)) {
			return formatErr(48, "tag %s must be %d to %d characters", tag, r.min, r.max)
		}
		switch tag {
		case TagReference:
			m.Reference = v
		case TagLodging:
			in, err1 := sterad.ParseCompactDate(v[:8])
			out, err2 := sterad.ParseCompactDate(v[8:])
			if err1 != nil || err2 != nil {
				return formatErr(48, "tag LD must be two YYYYMMDD dates")
			}
			m.Stay = &sterad.Stay{CheckIn: in, CheckOut: out}
		case TagMerchantIni:
			m.MerchantInitiated = v
		case TagTI:
			m.TI = v
		case TagWantToken:
			m.WantToken = v == "1"
		case TagToken:
			m.Token = v
		case TagStandIn:
			m.StandIn = v == "1"
		case TagReversal:
			m.ReversalReason = v
		case TagBatchUpload:
			m.BatchUpload = v == "1"
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
