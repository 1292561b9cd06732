package console

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"github.com/sterad/sterad"
)

func (s *Server) adminRoutes(mux *http.ServeMux) {
	p := s.Prefix
	mux.Handle("GET "+p+"/admin/audit-log", s.auth(permAudit, s.auditLog))
	mux.Handle("GET "+p+"/admin/audit-log.csv", s.auth(permAudit, s.auditLogCSV))
	mux.Handle("GET "+p+"/admin", s.auth(permAdmin, s.adminPage))
}

func (s *Server) auditFilter(r *request) sterad.AuditFilter {
	q := r.URL.Query()
	f := sterad.AuditFilter{User: q.Get("user"), Text: q.Get("q")}
	if d, err := sterad.ParseDate(q.Get("date")); err == nil {
		f.From = d.Time(s.Location)
		f.To = d.AddDays(1).Time(s.Location)
	}
	return f
}

// auditLog shows the audit log, newest first, searched.
func (s *Server) auditLog(w http.ResponseWriter, r *request) {
	f := s.auditFilter(r)
	f.Limit = 500
	entries, err := s.Store.Audit(r.Context(), f)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	q := r.URL.Query()
	s.render(w, r, http.StatusOK, "auditlog", map[string]any{"Entries": entries, "User": f.User, "Q": f.Text, "Date": q.Get("date"),
		"CSV": s.Prefix + "/admin/audit-log.csv?" + q.Encode()})
}

// auditLogCSV exports the matching entries as CSV; the export itself is
// audited.
func (s *Server) auditLogCSV(w http.ResponseWriter, r *request) {
	f := s.auditFilter(r)
	entries, err := s.Store.Audit(r.Context(), f)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.audit(r, "auditlog.export", "", "", strconv.Itoa(len(entries))+" entries")
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="sterad-audit-log.csv"`)
	cw := csv.NewWriter(w)
	cw.Write([]string{"seq", "time", "user", "action", "transaction", "reference", "detail", "remote"})
	for _, e := range entries {
		cw.Write([]string{strconv.FormatUint(e.Seq, 10), e.At.In(s.Location).Format(time.RFC3339), e.User, e.Action, e.Txn, e.Reference, e.Detail, e.Remote})
	}
	cw.Flush()
}

// adminPage lists the users and the link, queue and store status.
func (s *Server) adminPage(w http.ResponseWriter, r *request) {
	users, err := s.Store.ConsoleUsers(r.Context())
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	q, err := s.Queue.Queue(r.Context())
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "admin", map[string]any{"Users": users, "Link": s.Status.Acquirer(), "Queue": len(q),
		"Terminals": s.Terminals.Terminals(), "Now": s.now()})
}
