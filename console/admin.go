package console

import (
	"encoding/csv"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sterad/sterad"
)

func (s *Server) adminRoutes(mux *http.ServeMux) {
	p := s.Prefix
	mux.Handle("GET "+p+"/admin/audit-log", s.auth(permAudit, s.auditLog))
	mux.Handle("GET "+p+"/admin/audit-log.csv", s.auth(permAudit, s.auditLogCSV))
	mux.Handle("GET "+p+"/admin", s.auth(permAdmin, s.adminPage))
	mux.Handle("POST "+p+"/admin/users", s.auth(permAdmin, s.addUser))
	mux.Handle("POST "+p+"/admin/users/{name}/{action}", s.auth(permAdmin, s.userAction))
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
	q, err := s.Queue.QueueCounts(r.Context())
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "admin", map[string]any{"Users": users, "Link": s.Status.Acquirer(), "Queue": q.Depth,
		"Terminals": s.Terminals.Terminals(), "Now": s.now(), "Roles": sterad.Roles, "Done": r.URL.Query().Get("done")})
}

// addUser creates a user with a role and a first password (audited; the
// password never is).
func (s *Server) addUser(w http.ResponseWriter, r *request) {
	f := r.PostForm
	name, role := strings.TrimSpace(f.Get("name")), f.Get("role")
	if err := createUser(r.Context(), s.Store, name, role, f.Get("password"), s.now()); err != nil {
		s.render(w, r, http.StatusBadRequest, "error", map[string]any{"Code": http.StatusBadRequest, "Message": translate(r.lang, "admin.refused"), "Detail": err.Error()})
		return
	}
	s.audit(r, "user.add", "", name, "role="+role)
	http.Redirect(w, r.Request, s.Prefix+"/admin?done=user.add", http.StatusSeeOther)
}

// userAction resets a password (and lifts a lock), unlocks, disables,
// enables or changes the role of a user; an administrator cannot disable
// or demote themself (the console would be left without one).
func (s *Server) userAction(w http.ResponseWriter, r *request) {
	ctx := r.Context()
	name, action := r.PathValue("name"), r.PathValue("action")
	u, err := s.Store.ConsoleUser(ctx, name)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	refuse := func(msg string) {
		s.render(w, r, http.StatusBadRequest, "error", map[string]any{"Code": http.StatusBadRequest, "Message": translate(r.lang, "admin.refused"), "Detail": msg})
	}
	detail := ""
	switch action {
	case "password":
		if err := resetPassword(ctx, s.Store, name, r.PostForm.Get("password")); err != nil {
			refuse(err.Error())
			return
		}
		s.audit(r, "user.password", "", name, "")
		http.Redirect(w, r.Request, s.Prefix+"/admin?done=user.password", http.StatusSeeOther)
		return
	case "unlock":
		u.Failed, u.LockedUntil = 0, time.Time{}
	case "disable":
		if name == r.user.Name {
			refuse(translate(r.lang, "admin.notself"))
			return
		}
		u.Disabled = true
	case "enable":
		u.Disabled = false
	case "role":
		role := r.PostForm.Get("role")
		if !slices.Contains(sterad.Roles, role) {
			refuse("role " + role)
			return
		}
		if name == r.user.Name && role != sterad.RoleAdmin {
			refuse(translate(r.lang, "admin.notself"))
			return
		}
		detail = "role=" + role + " was=" + u.Role
		u.Role = role
	default:
		s.fail(w, r, http.StatusNotFound, "err.notfound")
		return
	}
	if err := s.Store.PutConsoleUser(ctx, u); err != nil {
		s.failErr(w, r, err)
		return
	}
	s.audit(r, "user."+action, "", name, detail)
	http.Redirect(w, r.Request, s.Prefix+"/admin?done=user."+action, http.StatusSeeOther)
}
