package console_test

import (
	"net/http"
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
