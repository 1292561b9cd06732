package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/sterad/sterad"
)

// checkKeysByTokens is checkKeys as it was first written, on the JSON
// decoder's tokens: the reference checkKeys is fuzzed against.
func checkKeysByTokens(body []byte, v any) error {
	names := namesOf(reflect.TypeOf(v))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	err := walkValue(dec, names, 0)
	if e, ok := err.(*sterad.Error); ok {
		return e
	}
	return nil
}

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

// checkKeys gives the same answer as the token walker on every valid body.
func FuzzCheckKeys(f *testing.F) {
	for _, s := range []string{
		`{"op":"sale","amount":"100"}`, `{"amount":"100","Amount":"900000"}`, `{"amount":"1","amount":"2"}`,
		`{"card":{"pan":"4111","PAN":"x"}}`, `{"x":[{"a":1,"a":2}]}`, `{"\u0061mount":"1","amount":"2"}`,
		`[[[[]]]]`, `{"op":"sale","stay":{"check_in":"2026-01-01"},"card":{"pan":"1","expiry":"2812"}}`,
		`{"a":"\"}","a":1}`, `{"OP":1}`, "{\"\x91\":\"\",\"\xd8\":\"\"}", ` { "op" : [ 1 , { "op" : 2 } ] } `, `{}`, `"x"`, `12`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) {
			checkKeys(body, &TransactionRequest{}) // must not panic
			return
		}
		got, want := checkKeys(body, &TransactionRequest{}), checkKeysByTokens(body, &TransactionRequest{})
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%q: checkKeys %v, the token walker %v", body, got, want)
		}
	})
}

func BenchmarkCheckKeys(b *testing.B) {
	body := []byte(`{"op":"sale","amount":"12800","card":{"pan":"4111111111111111","expiry":"2812"},"reference":"RSV-1234"}`)
	b.Run("scanner", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = checkKeys(body, &TransactionRequest{})
		}
	})
	b.Run("tokens", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = checkKeysByTokens(body, &TransactionRequest{})
		}
	})
}
