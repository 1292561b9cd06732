package offline

import (
	"context"
	"encoding/json"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/sterad/sterad"
)

// The web console's buckets: its users, its sessions and its audit log.
var (
	bktConsoleUsers    = []byte("console_users")    // name → JSON ConsoleUser
	bktConsoleSessions = []byte("console_sessions") // session ID (hash) → JSON ConsoleSession
	bktConsoleAudit    = []byte("console_audit")    // be64 seq → JSON AuditEntry (append-only)
)

func init() {
	allBuckets = append(allBuckets, bktConsoleUsers, bktConsoleSessions, bktConsoleAudit)
}

var _ sterad.ConsoleStore = (*DB)(nil)

// ConsoleUser returns the console user name; ErrNotFound when there is
// none.
func (db *DB) ConsoleUser(ctx context.Context, name string) (*sterad.ConsoleUser, error) {
	var u sterad.ConsoleUser
	err := db.view(ctx, func(tx *bolt.Tx) error { return getJSON(tx, bktConsoleUsers, []byte(name), &u) })
	if err != nil {
		return nil, wrapRead("read console user", err)
	}
	return &u, nil
}

// ConsoleUsers returns every console user, by name.
func (db *DB) ConsoleUsers(ctx context.Context) ([]*sterad.ConsoleUser, error) {
	var out []*sterad.ConsoleUser
	err := db.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bktConsoleUsers).ForEach(func(_, v []byte) error {
			u := new(sterad.ConsoleUser)
			if err := json.Unmarshal(v, u); err != nil {
				return err
			}
			out = append(out, u)
			return nil
		})
	})
	if err != nil {
		return nil, wrapRead("read console users", err)
	}
	return out, nil
}

// PutConsoleUser creates or replaces a console user.
func (db *DB) PutConsoleUser(ctx context.Context, u *sterad.ConsoleUser) error {
	if err := checkKey("user name", u.Name, true); err != nil {
		return err
	}
	return db.putConsole(ctx, bktConsoleUsers, []byte(u.Name), u)
}

// ConsoleSession returns the session id; ErrNotFound when there is none.
func (db *DB) ConsoleSession(ctx context.Context, id string) (*sterad.ConsoleSession, error) {
	var s sterad.ConsoleSession
	err := db.view(ctx, func(tx *bolt.Tx) error { return getJSON(tx, bktConsoleSessions, []byte(id), &s) })
	if err != nil {
		return nil, wrapRead("read console session", err)
	}
	return &s, nil
}

// PutConsoleSession creates or replaces a session.
func (db *DB) PutConsoleSession(ctx context.Context, s *sterad.ConsoleSession) error {
	if err := checkKey("session", s.ID, true); err != nil {
		return err
	}
	return db.putConsole(ctx, bktConsoleSessions, []byte(s.ID), s)
}

// DeleteConsoleSession ends a session; an unknown one is not an error.
func (db *DB) DeleteConsoleSession(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := db.enter(); err != nil {
		return err
	}
	defer db.leave()
	return db.update(func(tx *bolt.Tx) error { return tx.Bucket(bktConsoleSessions).Delete([]byte(id)) })
}

func (db *DB) putConsole(ctx context.Context, bucket, key []byte, v any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := db.enter(); err != nil {
		return err
	}
	defer db.leave()
	return db.update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(key, data) })
}

// AppendAudit appends an entry to the audit log under the next sequence
// number. Entries are never changed or deleted.
func (db *DB) AppendAudit(ctx context.Context, e sterad.AuditEntry) (sterad.AuditEntry, error) {
	if err := ctx.Err(); err != nil {
		return e, err
	}
	if err := db.enter(); err != nil {
		return e, err
	}
	defer db.leave()
	err := db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bktConsoleAudit)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.Seq = seq
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return b.Put(be64(seq), data)
	})
	return e, err
}

// Audit returns the audit entries matching f, newest first.
func (db *DB) Audit(ctx context.Context, f sterad.AuditFilter) ([]sterad.AuditEntry, error) {
	var out []sterad.AuditEntry
	text := strings.ToLower(f.Text)
	err := db.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bktConsoleAudit).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var e sterad.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if !AuditMatches(e, f, text) {
				continue
			}
			out = append(out, e)
			if f.Limit > 0 && len(out) >= f.Limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrapRead("read audit log", err)
	}
	return out, nil
}

// AuditMatches reports whether e matches f; text is f.Text in lower case.
func AuditMatches(e sterad.AuditEntry, f sterad.AuditFilter, text string) bool {
	switch {
	case f.User != "" && e.User != f.User:
		return false
	case !f.From.IsZero() && e.At.Before(f.From):
		return false
	case !f.To.IsZero() && !e.At.Before(f.To):
		return false
	}
	if text == "" {
		return true
	}
	for _, s := range []string{e.User, e.Action, e.Txn, e.Reference, e.Detail} {
		if strings.Contains(strings.ToLower(s), text) {
			return true
		}
	}
	return false
}
