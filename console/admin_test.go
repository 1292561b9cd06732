package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestAuditLogSearchAndExport(t *testing.T) {
	e := newEnv(t)
	a := e.client(t)
	a.mustLogin("sato")
	c := e.client(t)
	c.mustLogin("admin")
	body := c.get("/console/admin/audit-log?user=sato").body
	if !strings.Contains(body, "<td>sato</td><td>login</td>") || strings.Contains(body, "<td>admin</td><td>login</td>") {
		t.Fatalf("audit log filtered by user:\n%s", body)
	}
	res := c.get("/console/admin/audit-log.csv?user=sato")
	if res.code != 200 || !strings.HasPrefix(res.body, "seq,time,user,action") || !strings.Contains(res.body, ",sato,login,") {
		t.Fatalf("CSV: %d\n%s", res.code, res.body)
	}
	if !strings.Contains(strings.Join(e.store.actions(), ","), "admin auditlog.export") {
		t.Error("the export is not audited")
	}
	if res := a.get("/console/admin/audit-log"); res.code != http.StatusForbidden {
		t.Errorf("a clerk reads the audit log: %d", res.code)
	}
	if body := c.get("/console/admin").body; !strings.Contains(body, "acq.example:5000") || !strings.Contains(body, "<td>ito</td>") {
		t.Error("admin page lacks the link or the users")
	}
}

// TestUsersManagedByTheAdmin: an administrator adds a user with a role,
// resets a password, unlocks, disables and enables, in the browser; every
// change is audited and no password is.
func TestUsersManagedByTheAdmin(t *testing.T) {
	e := newEnv(t)
	a := e.client(t)
	csrf := a.mustLogin("admin")
	if body := a.get("/console/admin").body; !strings.Contains(body, `id="adduser-form"`) {
		t.Fatal("no add-user form")
	}
	res := a.post("/console/admin/users", url.Values{"csrf": {csrf}, "name": {"yamada"}, "role": {"reservations"}, "password": {"another long secret"}})
	if res.code != http.StatusSeeOther {
		t.Fatalf("add user: %d\n%s", res.code, res.body)
	}
	y := e.client(t)
	y.mustLoginWith("yamada", "another long secret")
	if res := y.get("/console/reservations"); res.code != 200 {
		t.Errorf("the new reservations user: %d", res.code)
	}
	// Refused: a short password, an existing name, an unknown role.
	for _, v := range []url.Values{
		{"name": {"short"}, "role": {"clerk"}, "password": {"short"}},
		{"name": {"yamada"}, "role": {"clerk"}, "password": {"another long secret"}},
		{"name": {"nobody"}, "role": {"king"}, "password": {"another long secret"}},
	} {
		v.Set("csrf", csrf)
		if res := a.post("/console/admin/users", v); res.code != http.StatusBadRequest {
			t.Errorf("add %v: %d", v, res.code)
		}
	}
	// Lock sato, then unlock him.
	s := e.client(t)
	for i := 0; i < 5; i++ {
		s.login("sato", "wrong password")
	}
	if body := a.get("/console/admin").body; !strings.Contains(body, "/admin/users/sato/unlock") {
		t.Fatal("a locked user cannot be unlocked")
	}
	a.post("/console/admin/users/sato/unlock", url.Values{"csrf": {csrf}})
	if res := s.login("sato", "correct horse battery"); res.code != http.StatusSeeOther {
		t.Fatalf("login after the unlock: %d", res.code)
	}
	// Reset a password: the old one no longer works.
	a.post("/console/admin/users/kato/password", url.Values{"csrf": {csrf}, "password": {"brand new password"}})
	if res := e.client(t).login("kato", "correct horse battery"); res.code == http.StatusSeeOther {
		t.Error("the old password still works")
	}
	e.client(t).mustLoginWith("kato", "brand new password")
	// Disable yamada: his session ends; enable him again.
	a.post("/console/admin/users/yamada/disable", url.Values{"csrf": {csrf}})
	if res := y.get("/console/reservations"); res.code != http.StatusSeeOther {
		t.Errorf("a disabled user's session goes on: %d", res.code)
	}
	if res := y.login("yamada", "another long secret"); res.code == http.StatusSeeOther {
		t.Error("a disabled user logs in")
	}
	a.post("/console/admin/users/yamada/enable", url.Values{"csrf": {csrf}})
	y.mustLoginWith("yamada", "another long secret")
	// Role change; an administrator cannot disable or demote themself.
	a.post("/console/admin/users/yamada/role", url.Values{"csrf": {csrf}, "role": {"auditor"}})
	if res := y.get("/console/audit"); res.code != 200 {
		t.Errorf("yamada as auditor: %d", res.code)
	}
	if res := a.post("/console/admin/users/admin/disable", url.Values{"csrf": {csrf}}); res.code != http.StatusBadRequest {
		t.Errorf("self-disable: %d", res.code)
	}
	if res := a.post("/console/admin/users/admin/role", url.Values{"csrf": {csrf}, "role": {"clerk"}}); res.code != http.StatusBadRequest {
		t.Errorf("self-demotion: %d", res.code)
	}
	// Admin only, and with the CSRF token.
	clerkCSRF := s.mustLogin("sato")
	if res := s.post("/console/admin/users", url.Values{"csrf": {clerkCSRF}, "name": {"evil"}, "role": {"admin"}, "password": {"another long secret"}}); res.code != http.StatusForbidden {
		t.Errorf("a clerk adds a user: %d", res.code)
	}
	if res := a.post("/console/admin/users/sato/disable", url.Values{}); res.code != http.StatusForbidden {
		t.Errorf("disable without CSRF token: %d", res.code)
	}
	got := strings.Join(e.store.actions(), ",")
	for _, w := range []string{"admin user.add", "admin user.unlock", "admin user.password", "admin user.disable", "admin user.enable", "admin user.role"} {
		if !strings.Contains(got, w) {
			t.Errorf("audit log lacks %q: %s", w, got)
		}
	}
	if all := strings.Join(e.store.texts(), "\n"); strings.Contains(all, "another long secret") || strings.Contains(all, "brand new password") {
		t.Error("a password is in the audit log")
	}
}
