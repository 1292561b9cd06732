package api

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/sterad/sterad"
)

// encoding/json matches a field name case-insensitively and lets the last
// of duplicate keys win: {"amount":"100","Amount":"900000"} would charge
// ¥900,000 to a client (or a proxy, or a log) that saw ¥100. checkKeys
// refuses both before the body is decoded.

// fieldNamer is a type that decodes its object itself (UnmarshalJSON)
// and names the fields it takes.
type fieldNamer interface{ jsonFieldNames() []string }

// jsonFieldNames: CardInput decodes {"pan","expiry"}.
func (CardInput) jsonFieldNames() []string { return []string{"pan", "expiry"} }

// fieldNames are the exact JSON field names a type takes, by their
// case-folded form.
type fieldNames struct {
	exact map[string]bool
	fold  map[string]string // strings.ToLower(name) → name
}

var namesCache sync.Map // reflect.Type → *fieldNames

func namesOf(t reflect.Type) *fieldNames {
	if v, ok := namesCache.Load(t); ok {
		return v.(*fieldNames)
	}
	n := &fieldNames{exact: map[string]bool{}, fold: map[string]string{}}
	collectNames(t, n, map[reflect.Type]bool{})
	namesCache.Store(t, n)
	return n
}

var namerType = reflect.TypeFor[fieldNamer]()

func collectNames(t reflect.Type, n *fieldNames, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
		t = t.Elem()
	}
	if seen[t] {
		return
	}
	seen[t] = true
	add := func(name string) {
		n.exact[name] = true
		n.fold[strings.ToLower(name)] = name
	}
	if t.Implements(namerType) || reflect.PointerTo(t).Implements(namerType) {
		for _, name := range reflect.Zero(t).Interface().(fieldNamer).jsonFieldNames() {
			add(name)
		}
		return
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			collectNames(f.Type, n, seen)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		add(name)
		collectNames(f.Type, n, seen)
	}
}

// checkKeys refuses a body where an object repeats a key, or names a
// field in another case than its own. A body that is not valid JSON is
// left to the decoder to describe. Errors never quote a key that is not a
// known field name (a key could be a card number).
//
// It scans the bytes once, without decoding values: the request path's
// body is checked on every payment (checkKeysByTokens, its reference in
// the tests, gives the same answers on every valid body: FuzzCheckKeys).
func checkKeys(body []byte, v any) error {
	s := keyScanner{b: body, names: namesOf(reflect.TypeOf(v))}
	err := s.value(0)
	if e, ok := err.(*sterad.Error); ok {
		return e
	}
	return nil
}

// maxDepth bounds the nesting checkKeys follows (the decoder has its own
// bound; a deeper body is refused by it).
const maxDepth = 64

// errNotJSON stops a scan at bytes that are not JSON: the decoder then
// says what is wrong.
var errNotJSON = errors.New("not JSON")

type keyScanner struct {
	b     []byte
	i     int
	names *fieldNames
}

func (s *keyScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *keyScanner) value(depth int) error {
	if depth > maxDepth {
		return sterad.Errorf(sterad.EInvalid, "malformed_json", "malformed JSON: nested too deeply")
	}
	s.space()
	if s.i >= len(s.b) {
		return errNotJSON
	}
	switch s.b[s.i] {
	case '{':
		return s.object(depth)
	case '[':
		s.i++
		s.space()
		if s.i < len(s.b) && s.b[s.i] == ']' {
			s.i++
			return nil
		}
		for {
			if err := s.value(depth + 1); err != nil {
				return err
			}
			if end, err := s.next(']'); end || err != nil {
				return err
			}
		}
	case '"':
		_, err := s.str()
		return err
	default: // a number, true, false or null: the decoder checks it
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', ']', '}', ' ', '\t', '\n', '\r':
				return nil
			}
			s.i++
		}
		return nil
	}
}

func (s *keyScanner) object(depth int) error {
	s.i++ // {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	var seen []string
	for {
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return errNotJSON
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		if slices.Contains(seen, key) {
			if s.names.exact[key] {
				return sterad.Errorf(sterad.EInvalid, "duplicate_field", "field %q appears twice in one object", key)
			}
			return sterad.Errorf(sterad.EInvalid, "duplicate_field", "a field name appears twice in one object")
		}
		seen = append(seen, key)
		if !s.names.exact[key] {
			// An unknown name is the decoder's to refuse.
			if want, ok := s.names.fold[strings.ToLower(key)]; ok {
				return sterad.Errorf(sterad.EInvalid, "field_case", "field %q must be written %q: field names are case-sensitive", key, want)
			}
		}
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return errNotJSON
		}
		s.i++
		if err := s.value(depth + 1); err != nil {
			return err
		}
		if end, err := s.next('}'); end || err != nil {
			return err
		}
	}
}

// next reads what follows a member of an array or object: a comma (more
// follow) or close (end is true).
func (s *keyScanner) next(close byte) (end bool, err error) {
	s.space()
	if s.i >= len(s.b) {
		return false, errNotJSON
	}
	c := s.b[s.i]
	s.i++
	switch c {
	case ',':
		return false, nil
	case close:
		return true, nil
	}
	return false, errNotJSON
}

// str reads a string and returns its value (escapes decoded).
func (s *keyScanner) str() (string, error) {
	start := s.i
	s.i++ // "
	escaped := false
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			escaped = true
			s.i += 2
			continue
		case '"':
			s.i++
			raw := s.b[start:s.i]
			if !escaped && utf8.Valid(raw) {
				return string(raw[1 : len(raw)-1]), nil
			}
			// Escapes, and bytes that are not UTF-8 (each read as
			// U+FFFD), decode as the decoder decodes them.
			var v string
			if err := json.Unmarshal(raw, &v); err != nil {
				return "", errNotJSON
			}
			return v, nil
		}
		s.i++
	}
	return "", errNotJSON
}
