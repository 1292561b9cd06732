package sterad

import (
	"context"
	"time"
)

// Console roles: what each console user may do (docs/console.md).
const (
	RoleClerk        = "clerk"        // front desk: sales, pre-authorizations, refunds, voids
	RoleReservations = "reservations" // reservation desk: card checks, the vault, no-shows
	RoleAuditor      = "auditor"      // night audit: batches, the close, alerts, settlement
	RoleAdmin        = "admin"        // everything, and users and the audit log
)

// Roles lists every console role.
var Roles = []string{RoleClerk, RoleReservations, RoleAuditor, RoleAdmin}

// ConsoleUser is a user of the web console. PasswordHash is a password
// hash (bcrypt); the password itself is never stored.
type ConsoleUser struct {
	Name         string    `json:"name"`
	Role         string    `json:"role"`
	PasswordHash string    `json:"password_hash"`
	Failed       int       `json:"failed"`                // wrong passwords in a row
	LockedUntil  time.Time `json:"locked_until,omitzero"` // refused until then
	Disabled     bool      `json:"disabled,omitempty"`    // refused for good
	CreatedAt    time.Time `json:"created_at"`
	LastLogin    time.Time `json:"last_login,omitzero"`
}

// ConsoleSession is a signed-in console session. ID is a hash of the
// cookie's secret, never the secret itself.
type ConsoleSession struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	CSRF      string    `json:"csrf"`
	CreatedAt time.Time `json:"created_at"`
	LastSeen  time.Time `json:"last_seen"`
}

// AuditEntry is one line of the console's append-only audit log: who did
// what, when, to which transaction or reference. It never holds card data.
type AuditEntry struct {
	Seq       uint64    `json:"seq"` // assigned by the store
	At        time.Time `json:"at"`
	User      string    `json:"user"`
	Action    string    `json:"action"`
	Txn       string    `json:"txn,omitempty"`
	Reference string    `json:"reference,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	Remote    string    `json:"remote,omitempty"`
}

// AuditFilter selects audit entries; zero fields match everything. Text
// matches user, action, transaction, reference or detail.
type AuditFilter struct {
	User  string
	Text  string
	From  time.Time
	To    time.Time
	Limit int
}

// ConsoleStore keeps the console's users, sessions and audit log. An
// unknown user or session is ENotFound.
type ConsoleStore interface {
	ConsoleUser(ctx context.Context, name string) (*ConsoleUser, error)
	ConsoleUsers(ctx context.Context) ([]*ConsoleUser, error)
	PutConsoleUser(ctx context.Context, u *ConsoleUser) error
	ConsoleSession(ctx context.Context, id string) (*ConsoleSession, error)
	PutConsoleSession(ctx context.Context, s *ConsoleSession) error
	DeleteConsoleSession(ctx context.Context, id string) error
	// AppendAudit appends e (its Seq is assigned) and returns it.
	AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error)
	// Audit returns the matching entries, newest first.
	Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
}
