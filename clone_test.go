package sterad

import (
	"reflect"
	"testing"
)

// fillAll sets every field reachable from v to a non-zero value: pointers
// get a new value, slices one element, maps one entry.
func fillAll(t *testing.T, v reflect.Value, depth int) {
	if depth > 8 {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		fillAll(t, v.Elem(), depth+1)
	case reflect.Struct:
		if v.Type().PkgPath() != "github.com/sterad/sterad" {
			return // time.Time, decimal.Decimal: values whose insides are never changed in place
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillAll(t, v.Field(i), depth+1)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fillAll(t, s.Index(0), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fillAll(t, k, depth+1)
		fillAll(t, e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	}
}

// sharedMemory returns the path of the first pointer, slice or map that a
// and b share.
func sharedMemory(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() {
			return ""
		}
		if a.Pointer() == b.Pointer() {
			return path
		}
		return sharedMemory(a.Elem(), b.Elem(), path)
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for i := 0; i < a.Len(); i++ {
			if p := sharedMemory(a.Index(i), b.Index(i), path+"[]"); p != "" {
				return p
			}
		}
	case reflect.Map:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
	case reflect.Struct:
		if a.Type().PkgPath() != "github.com/sterad/sterad" {
			return ""
		}
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				if p := sharedMemory(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
					return p
				}
			}
		}
	}
	return ""
}

// A clone shares nothing a writer could change with its original: the
// gateway hands out clones of the records it holds, and a field added
// later with a slice or pointer must be copied too.
func TestTransactionCloneSharesNothing(t *testing.T) {
	var x Transaction
	fillAll(t, reflect.ValueOf(&x).Elem(), 0)
	c := x.Clone()
	if !reflect.DeepEqual(&x, c) {
		t.Fatalf("clone differs:\n%+v\n%+v", x, *c)
	}
	if p := sharedMemory(reflect.ValueOf(&x).Elem(), reflect.ValueOf(c).Elem(), "Transaction"); p != "" {
		t.Fatalf("the clone shares %s with its original", p)
	}
}
