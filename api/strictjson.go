package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"sync"

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
func checkKeys(body []byte, v any) error {
	names := namesOf(reflect.TypeOf(v))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	err := walkValue(dec, names, 0)
	if e, ok := err.(*sterad.Error); ok {
		return e
	}
	return nil
}

// maxDepth bounds the nesting checkKeys follows (the decoder has its own
// bound; a deeper body is refused by it).
const maxDepth = 64

func walkValue(dec *json.Decoder, names *fieldNames, depth int) error {
	if depth > maxDepth {
		return sterad.Errorf(sterad.EInvalid, "malformed_json", "malformed JSON: nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := kt.(string)
			if seen[key] {
				if names.exact[key] {
					return sterad.Errorf(sterad.EInvalid, "duplicate_field", "field %q appears twice in one object", key)
				}
				return sterad.Errorf(sterad.EInvalid, "duplicate_field", "a field name appears twice in one object")
			}
			seen[key] = true
			if !names.exact[key] {
				// An unknown name is the decoder's to refuse.
				if want, ok := names.fold[strings.ToLower(key)]; ok {
					return sterad.Errorf(sterad.EInvalid, "field_case", "field %q must be written %q: field names are case-sensitive", key, want)
				}
			}
			if err := walkValue(dec, names, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	case json.Delim('['):
		for dec.More() {
			if err := walkValue(dec, names, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	return nil
}
