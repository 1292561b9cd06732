package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/sterad/sterad"
)

type pageTemplate struct{ t *template.Template }

var funcs = template.FuncMap{
	"yen":   func(minor int64) string { return sterad.AmountFromMinor(minor, sterad.JPY).Display() },
	"upper": strings.ToUpper,
	"add":   func(a, b int) int { return a + b },
	"days":  func(d time.Duration) string { return strconv.FormatFloat(d.Hours()/24, 'f', 1, 64) },
	"holdsOf": func(p *page, hs []sterad.Hold) map[string]any {
		return map[string]any{"P": p, "Holds": hs}
	},
	"debits": func(b *sterad.Batch) int64 {
		var n int64
		for _, t := range b.Terminals {
			n += t.Totals.DebitAmount
		}
		return n
	},
	"credits": func(b *sterad.Batch) int64 {
		var n int64
		for _, t := range b.Terminals {
			n += t.Totals.CreditAmount
		}
		return n
	},
}

// parsePages parses every page with the layout; partials are the
// templates named "partial-…" in each page file.
func parsePages() (map[string]*pageTemplate, error) {
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*pageTemplate{}
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", n, err)
		}
		out[base] = &pageTemplate{t}
	}
	return out, nil
}

// page is what every template gets: the language, the user, the CSRF
// token and the page's own data.
type page struct {
	Lang   string
	User   *sterad.ConsoleUser
	CSRF   string
	Prefix string
	Path   string
	Name   string
	Data   any
	s      *Server
}

// T translates key, formatting args into it.
func (p *page) T(key string, args ...any) string { return translate(p.Lang, key, args...) }

// Can reports whether the user may do what perm names (pay, reserve,
// audit, admin).
func (p *page) Can(what string) bool {
	if p.User == nil {
		return false
	}
	m := map[string]perm{"view": permView, "pay": permPay, "reserve": permReserve, "audit": permAudit, "admin": permAdmin}
	pm, ok := m[what]
	return ok && can(p.User.Role, pm)
}

// Time formats t in the hotel's time zone.
func (p *page) Time(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(p.s.Location).Format("2006-01-02 15:04:05")
}

// Clock formats t as a time of day in the hotel's time zone.
func (p *page) Clock(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(p.s.Location).Format("15:04:05")
}

// Status translates a transaction status.
func (p *page) Status(s sterad.Status) string { return p.T("status." + string(s)) }

// Op translates an operation.
func (p *page) Op(o sterad.Op) string { return p.T("op." + string(o)) }

// LangURL is the language switch's link back to this page.
func (p *page) LangURL(lang string) string {
	return p.Prefix + "/lang/" + lang + "?next=" + url.QueryEscape(p.Path)
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

func urlPathEscape(s string) string { return url.PathEscape(s) }

// render writes page name (or, for an htmx request asking a partial, the
// template named by the partial argument) with data.
func (s *Server) render(w http.ResponseWriter, r *request, code int, name string, data any) {
	s.renderTemplate(w, r, code, name, "layout.html", data)
}

// renderPartial writes one template of page name, alone.
func (s *Server) renderPartial(w http.ResponseWriter, r *request, name, tmpl string, data any) {
	s.renderTemplate(w, r, http.StatusOK, name, tmpl, data)
}

func (s *Server) renderTemplate(w http.ResponseWriter, r *request, code int, name, tmpl string, data any) {
	pt, ok := s.pages[name]
	if !ok {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := pt.t.ExecuteTemplate(&buf, tmpl, s.pageData(r, name, data)); err != nil {
		s.Logger.Error("console: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (s *Server) pageData(r *request, name string, data any) *page {
	p := &page{Lang: r.lang, User: r.user, Prefix: s.Prefix, Path: r.URL.RequestURI(), Name: name, Data: data, s: s}
	if r.session != nil {
		p.CSRF = r.session.CSRF
	}
	if r.Method != http.MethodGet {
		p.Path = s.Prefix + "/"
	}
	return p
}

// fail shows an error page with the message key.
func (s *Server) fail(w http.ResponseWriter, r *request, code int, key string, args ...any) {
	s.render(w, r, code, "error", map[string]any{"Code": code, "Message": translate(r.lang, key, args...)})
}

// failErr shows a service error: its message for the clerk, never card
// data (the services' errors carry none).
func (s *Server) failErr(w http.ResponseWriter, r *request, err error) {
	code := http.StatusInternalServerError
	switch sterad.ErrorKind(err) {
	case sterad.EInvalid:
		code = http.StatusBadRequest
	case sterad.ENotFound:
		code = http.StatusNotFound
	case sterad.EConflict:
		code = http.StatusConflict
	case sterad.EUnavailable:
		code = http.StatusServiceUnavailable
	}
	s.render(w, r, code, "error", map[string]any{"Code": code, "Message": translate(r.lang, "err.service"), "Detail": sterad.ErrorMessage(err)})
}
