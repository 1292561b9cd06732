package offline_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sterad/sterad"
)

// TestConsoleUsersAndSessionsSurviveReopen: users and sessions are kept
// across a restart; unknown ones are not found.
func TestConsoleUsersAndSessionsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	db, dir := open(t, testOptions())
	u := &sterad.ConsoleUser{Name: "sato", Role: sterad.RoleAdmin, PasswordHash: "$2a$10$x", CreatedAt: t0}
	if err := db.PutConsoleUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := db.PutConsoleSession(ctx, &sterad.ConsoleSession{ID: "h1", User: "sato", CSRF: "c", CreatedAt: t0, LastSeen: t0}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = reopen(t, dir, testOptions())
	got, err := db.ConsoleUser(ctx, "sato")
	if err != nil || got.Role != sterad.RoleAdmin || got.PasswordHash != "$2a$10$x" {
		t.Fatalf("ConsoleUser = %+v, %v", got, err)
	}
	if _, err := db.ConsoleUser(ctx, "nobody"); !errors.Is(err, sterad.ErrNotFound) {
		t.Fatalf("unknown user: %v, want ErrNotFound", err)
	}
	s, err := db.ConsoleSession(ctx, "h1")
	if err != nil || s.User != "sato" {
		t.Fatalf("ConsoleSession = %+v, %v", s, err)
	}
	if err := db.DeleteConsoleSession(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ConsoleSession(ctx, "h1"); !errors.Is(err, sterad.ErrNotFound) {
		t.Fatalf("deleted session: %v, want ErrNotFound", err)
	}
	users, err := db.ConsoleUsers(ctx)
	if err != nil || len(users) != 1 {
		t.Fatalf("ConsoleUsers = %d, %v", len(users), err)
	}
}

// TestAuditLogAppendsAndSearches: entries get increasing sequence
// numbers and come back newest first, filtered.
func TestAuditLogAppendsAndSearches(t *testing.T) {
	ctx := context.Background()
	db, _ := open(t, testOptions())
	entries := []sterad.AuditEntry{
		{At: t0, User: "sato", Action: "login"},
		{At: t0.Add(time.Minute), User: "sato", Action: "sale", Txn: "T1", Reference: "RSV-1"},
		{At: t0.Add(2 * time.Minute), User: "kato", Action: "refund", Txn: "T2"},
	}
	for i, e := range entries {
		got, err := db.AppendAudit(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != uint64(i+1) {
			t.Fatalf("entry %d: seq %d", i, got.Seq)
		}
	}
	tests := []struct {
		name string
		f    sterad.AuditFilter
		want []string // actions, newest first
	}{
		{"all", sterad.AuditFilter{}, []string{"refund", "sale", "login"}},
		{"user", sterad.AuditFilter{User: "sato"}, []string{"sale", "login"}},
		{"text", sterad.AuditFilter{Text: "rsv-1"}, []string{"sale"}},
		{"from", sterad.AuditFilter{From: t0.Add(time.Minute)}, []string{"refund", "sale"}},
		{"limit", sterad.AuditFilter{Limit: 1}, []string{"refund"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Audit(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var actions []string
			for _, e := range got {
				actions = append(actions, e.Action)
			}
			if len(actions) != len(tt.want) {
				t.Fatalf("got %v, want %v", actions, tt.want)
			}
			for i := range actions {
				if actions[i] != tt.want[i] {
					t.Fatalf("got %v, want %v", actions, tt.want)
				}
			}
		})
	}
}
