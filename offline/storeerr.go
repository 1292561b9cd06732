package offline

import "errors"

// Why Open (or Check, Restore) refuses a store. Each is the Kind of a
// *StoreError, which names the file and says what to do; compare with
// errors.Is.
var (
	// ErrNoKEK: no key-encryption key was given, or its file is missing,
	// unreadable, mis-sized, readable by others or inside the data
	// directory.
	ErrNoKEK = errors.New("no usable key-encryption key")

	// ErrWrongKEK: the key files are wrapped under another KEK than the
	// ones given.
	ErrWrongKEK = errors.New("wrong key-encryption key")

	// ErrDamaged: a part of the store is missing, belongs to another
	// store, or is corrupt. Nothing was changed: the store is never
	// started fresh over an existing identity.
	ErrDamaged = errors.New("store damaged")

	// ErrNewerSchema: the store was written by a newer sterad.
	ErrNewerSchema = errors.New("store written by a newer sterad")

	// ErrInUse: another process (the daemon) has the store open.
	ErrInUse = errors.New("store in use")

	// ErrNotEmpty: Restore refuses to write over an existing store.
	ErrNotEmpty = errors.New("a store is already there")
)

// StoreError is a refusal to open, check or restore a store: one line
// that names the file and what to do.
type StoreError struct {
	Kind error  // one of the Err values above
	Path string // the file or directory concerned
	Msg  string // what is wrong and what to do
}

func (e *StoreError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

func (e *StoreError) Unwrap() error { return e.Kind }

func damaged(path, msg string) *StoreError {
	return &StoreError{Kind: ErrDamaged, Path: path, Msg: msg}
}
