// Package console is sterad's web console for the front desk, the
// reservation desk, the night auditor and the administrator: pages
// rendered on the server (html/template), in Japanese by default and in
// English, mounted by the daemon at /console/ on the API's listener. It
// calls the gateway's services in-process: the browser never holds the API
// token. See docs/console.md.
package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sterad/sterad"
)

// Security rules.
const (
	MaxFailedLogins = 5                // wrong passwords in a row before the lock
	LockDuration    = time.Hour        // how long a locked account is refused
	IdleTimeout     = 15 * time.Minute // a session ends after this long unused
	MinPassword     = 10               // characters

	sessionCookie = "sterad_session"
	loginCookie   = "sterad_login" // the login form's CSRF token (before any session)
	langCookie    = "sterad_lang"
)

// Server is the web console. Set the services and Store, then mount
// Handler at Prefix.
type Server struct {
	Transactions sterad.TransactionService
	Terminals    sterad.TerminalService
	Batches      sterad.BatchService
	Vault        sterad.VaultService
	Reservations sterad.ReservationService
	Status       sterad.StatusService
	Settlement   sterad.SettlementService
	Queue        sterad.QueueService
	// Payments is the check-out with vouchers and deposits, the open
	// holds and the voucher report; nil hides those pages.
	Payments sterad.ReservationPaymentService
	Store    sterad.ConsoleStore

	// Blind: sterad runs card-data-blind (it never takes a card number):
	// the keyed telephone-order page does not exist.
	Blind bool

	Clock    sterad.Clock   // default: the system clock
	Logger   *slog.Logger   // default: discard
	Location *time.Location // the hotel's time zone; default Asia/Tokyo
	Prefix   string         // default "/console"
	// Poll is how often live pages (server-sent events) look at a
	// transaction or a close under way; default 200 ms.
	Poll time.Duration

	pages map[string]*pageTemplate
}

func (s *Server) now() time.Time { return s.Clock.Now() }

// Handler returns the console's handler, for Prefix and everything under
// it. It fails when an embedded asset does not match its checksum.
func (s *Server) Handler() (http.Handler, error) {
	if err := CheckAssets(); err != nil {
		return nil, err
	}
	if s.Store == nil {
		return nil, errors.New("console: no user store")
	}
	if s.Clock == nil {
		s.Clock = sterad.SystemClock{}
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Location == nil {
		loc, err := time.LoadLocation("Asia/Tokyo")
		if err != nil {
			loc = time.FixedZone("JST", 9*3600)
		}
		s.Location = loc
	}
	if s.Prefix == "" {
		s.Prefix = "/console"
	}
	s.Prefix = strings.TrimSuffix(s.Prefix, "/")
	if s.Poll <= 0 {
		s.Poll = 200 * time.Millisecond
	}
	var err error
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	p := s.Prefix
	mux.HandleFunc("GET "+p+"/assets/{name}", s.asset)
	mux.HandleFunc("GET "+p+"/login", s.loginPage)
	mux.HandleFunc("POST "+p+"/login", s.login)
	mux.HandleFunc("GET "+p+"/lang/{lang}", s.setLang)
	mux.Handle("POST "+p+"/logout", s.auth(permView, s.logout))
	mux.Handle("GET "+p+"/{$}", s.auth(permView, s.home))
	s.frontDeskRoutes(mux)
	s.reservationRoutes(mux)
	s.nightAuditRoutes(mux)
	s.adminRoutes(mux)
	mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		http.NotFound(w, r)
	})
	return securityHeaders(mux), nil
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// Permissions, granted to roles by can.
type perm int

const (
	permView    perm = iota // terminals, transactions, slips
	permPay                 // sales, pre-authorizations, refunds, voids
	permReserve             // card checks, the vault, releases, no-shows
	permAudit               // batches, the close, alerts, settlement, the audit log
	permAdmin               // users
)

// can reports whether role may do p.
func can(role string, p perm) bool {
	switch p {
	case permView:
		return slices.Contains(sterad.Roles, role)
	case permPay:
		return role == sterad.RoleClerk || role == sterad.RoleAdmin
	case permReserve:
		return role == sterad.RoleReservations || role == sterad.RoleAdmin
	case permAudit:
		return role == sterad.RoleAuditor || role == sterad.RoleAdmin
	case permAdmin:
		return role == sterad.RoleAdmin
	}
	return false
}

// request is what a handler knows of the signed-in user.
type request struct {
	*http.Request
	user    *sterad.ConsoleUser
	session *sterad.ConsoleSession
	lang    string
}

type handlerFunc func(http.ResponseWriter, *request)

// auth admits a request with a live session whose user may do p; every
// POST must carry the session's CSRF token (403 without it).
func (s *Server) auth(p perm, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rq := &request{Request: r, lang: langOf(r)}
		sess, user := s.session(r)
		if sess == nil {
			if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "" && !strings.HasSuffix(r.URL.Path, "/events") {
				http.Redirect(w, r, s.Prefix+"/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.fail(w, rq, http.StatusUnauthorized, "err.session")
			return
		}
		rq.user, rq.session = user, sess
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				s.fail(w, rq, http.StatusBadRequest, "err.form")
				return
			}
			tok := r.PostForm.Get("csrf")
			if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(sess.CSRF)) != 1 {
				s.Logger.Warn("console: POST refused without its CSRF token", "user", user.Name, "path", r.URL.Path)
				s.fail(w, rq, http.StatusForbidden, "err.csrf")
				return
			}
		}
		if !can(user.Role, p) {
			s.fail(w, rq, http.StatusForbidden, "err.forbidden")
			return
		}
		h(w, rq)
	})
}

// session returns the request's live session and its user, or nils. It
// ends a session idle for IdleTimeout and notes the activity of others.
func (s *Server) session(r *http.Request) (*sterad.ConsoleSession, *sterad.ConsoleUser) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	ctx := r.Context()
	id := sessionID(c.Value)
	sess, err := s.Store.ConsoleSession(ctx, id)
	if err != nil {
		return nil, nil
	}
	now := s.now()
	if now.Sub(sess.LastSeen) >= IdleTimeout {
		s.Store.DeleteConsoleSession(ctx, id)
		return nil, nil
	}
	user, err := s.Store.ConsoleUser(ctx, sess.User)
	if err != nil || user.Disabled {
		s.Store.DeleteConsoleSession(ctx, id)
		return nil, nil
	}
	// Live pages (server-sent events) do not count as activity.
	if !strings.HasSuffix(r.URL.Path, "/events") && now.Sub(sess.LastSeen) >= 10*time.Second {
		sess.LastSeen = now
		if err := s.Store.PutConsoleSession(ctx, sess); err != nil {
			s.Logger.Error("console: session", "err", err)
		}
	}
	return sess, user
}

// sessionID is what the store keeps of a session cookie: its hash.
func sessionID(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashPassword hashes a new password with bcrypt; a password shorter than
// MinPassword characters is refused.
func HashPassword(password string) (string, error) {
	if len([]rune(password)) < MinPassword {
		return "", fmt.Errorf("the password must have at least %d characters", MinPassword)
	}
	if len(password) > 72 {
		return "", errors.New("the password must have at most 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return "", err
	}
	return string(h), nil
}

// AddUser creates a console user with a role and a password (the CLI's
// `sterad user add`). An existing name is refused.
func AddUser(ctx context.Context, st sterad.ConsoleStore, name, role, password string, now time.Time) error {
	if err := createUser(ctx, st, name, role, password, now); err != nil {
		return err
	}
	_, err := st.AppendAudit(ctx, sterad.AuditEntry{At: now, User: "cli", Action: "user.add", Reference: name, Detail: "role=" + role})
	return err
}

func createUser(ctx context.Context, st sterad.ConsoleStore, name, role, password string, now time.Time) error {
	if !validName(name) {
		return fmt.Errorf("user name %q: use 1 to 32 letters, digits, dots, dashes or underscores", name)
	}
	if !slices.Contains(sterad.Roles, role) {
		return fmt.Errorf("role %q: use one of %s", role, strings.Join(sterad.Roles, ", "))
	}
	if _, err := st.ConsoleUser(ctx, name); err == nil {
		return fmt.Errorf("user %q exists", name)
	} else if !errors.Is(err, sterad.ErrNotFound) {
		return err
	}
	h, err := HashPassword(password)
	if err != nil {
		return err
	}
	return st.PutConsoleUser(ctx, &sterad.ConsoleUser{Name: name, Role: role, PasswordHash: h, CreatedAt: now})
}

// SetPassword replaces a user's password and lifts a lock.
func SetPassword(ctx context.Context, st sterad.ConsoleStore, name, password string, now time.Time, by string) error {
	if err := resetPassword(ctx, st, name, password); err != nil {
		return err
	}
	_, err := st.AppendAudit(ctx, sterad.AuditEntry{At: now, User: by, Action: "user.password", Reference: name})
	return err
}

func resetPassword(ctx context.Context, st sterad.ConsoleStore, name, password string) error {
	u, err := st.ConsoleUser(ctx, name)
	if err != nil {
		return fmt.Errorf("user %q: %w", name, err)
	}
	if u.PasswordHash, err = HashPassword(password); err != nil {
		return err
	}
	u.Failed, u.LockedUntil = 0, time.Time{}
	return st.PutConsoleUser(ctx, u)
}

func validName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// audit appends to the audit log; a failure is logged (the action is
// done) and never carries card data.
func (s *Server) audit(r *request, action, txn, ref, detail string) {
	e := sterad.AuditEntry{At: s.now(), User: r.user.Name, Action: action, Txn: txn, Reference: ref, Detail: detail, Remote: remoteIP(r.Request)}
	if _, err := s.Store.AppendAudit(context.WithoutCancel(r.Context()), e); err != nil {
		s.Logger.Error("console: audit log", "action", action, "err", err)
	}
}

func remoteIP(r *http.Request) string {
	h := r.RemoteAddr
	if i := strings.LastIndexByte(h, ':'); i > 0 {
		h = h[:i]
	}
	return strings.Trim(h, "[]")
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.renderLogin(w, r, http.StatusOK, "")
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, code int, msg string) {
	tok := randomToken()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: tok, Path: s.Prefix, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: 3600})
	rq := &request{Request: r, lang: langOf(r)}
	s.render(w, rq, code, "login", map[string]any{"LoginCSRF": tok, "Error": msg, "Next": safeNext(s.Prefix, r.FormValue("next"))})
}

// login checks a password. Five wrong passwords in a row lock the account
// for an hour; a locked account is refused even with the right password.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	rq := &request{Request: r, lang: langOf(r)}
	c, err := r.Cookie(loginCookie)
	tok := r.PostForm.Get("csrf")
	if err != nil || tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(c.Value)) != 1 {
		s.fail(w, rq, http.StatusForbidden, "err.csrf")
		return
	}
	ctx := r.Context()
	name, password := strings.TrimSpace(r.PostForm.Get("user")), r.PostForm.Get("password")
	now := s.now()
	u, err := s.Store.ConsoleUser(ctx, name)
	if err != nil {
		// Spend the same time as a real check: no user enumeration.
		bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		s.Logger.Info("console: login refused", "user", name, "why", "unknown user")
		s.renderLogin(w, r, http.StatusUnauthorized, "login.bad")
		return
	}
	if u.Disabled {
		s.renderLogin(w, r, http.StatusUnauthorized, "login.bad")
		return
	}
	if now.Before(u.LockedUntil) {
		s.Store.AppendAudit(ctx, sterad.AuditEntry{At: now, User: name, Action: "login.locked", Remote: remoteIP(r)})
		s.renderLogin(w, r, http.StatusForbidden, "login.locked")
		return
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		u.Failed++
		action, msg, code := "login.failed", "login.bad", http.StatusUnauthorized
		if u.Failed >= MaxFailedLogins {
			u.Failed, u.LockedUntil = 0, now.Add(LockDuration)
			action, msg, code = "login.lock", "login.locked", http.StatusForbidden
		}
		if err := s.Store.PutConsoleUser(ctx, u); err != nil {
			s.fail(w, rq, http.StatusInternalServerError, "err.internal")
			return
		}
		s.Store.AppendAudit(ctx, sterad.AuditEntry{At: now, User: name, Action: action, Remote: remoteIP(r)})
		s.renderLogin(w, r, code, msg)
		return
	}
	u.Failed, u.LockedUntil, u.LastLogin = 0, time.Time{}, now
	if err := s.Store.PutConsoleUser(ctx, u); err != nil {
		s.fail(w, rq, http.StatusInternalServerError, "err.internal")
		return
	}
	secret := randomToken()
	sess := &sterad.ConsoleSession{ID: sessionID(secret), User: u.Name, CSRF: randomToken(), CreatedAt: now, LastSeen: now}
	if err := s.Store.PutConsoleSession(ctx, sess); err != nil {
		s.fail(w, rq, http.StatusInternalServerError, "err.internal")
		return
	}
	s.Store.AppendAudit(ctx, sterad.AuditEntry{At: now, User: u.Name, Action: "login", Remote: remoteIP(r)})
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: secret, Path: s.Prefix, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: s.Prefix, MaxAge: -1})
	http.Redirect(w, r, safeNext(s.Prefix, r.PostForm.Get("next")), http.StatusSeeOther)
}

// bcryptCost is the work factor of new password hashes (tests lower it).
var bcryptCost = 12

// dummy is a hash compared when the user is unknown, so that an unknown
// name takes as long as a wrong password.
var (
	dummyOnce sync.Once
	dummy     []byte
)

func dummyHash() []byte {
	dummyOnce.Do(func() { dummy, _ = bcrypt.GenerateFromPassword([]byte("not a password at all"), bcryptCost) })
	return dummy
}

// safeNext keeps a redirect inside the console.
func safeNext(prefix, next string) string {
	if strings.HasPrefix(next, prefix+"/") && !strings.HasPrefix(next, "//") && !strings.Contains(next, "\\") {
		return next
	}
	return prefix + "/"
}

func (s *Server) logout(w http.ResponseWriter, r *request) {
	s.Store.DeleteConsoleSession(r.Context(), r.session.ID)
	s.audit(r, "logout", "", "", "")
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: s.Prefix, MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r.Request, s.Prefix+"/login", http.StatusSeeOther)
}

// setLang switches the language (a cookie) and goes back.
func (s *Server) setLang(w http.ResponseWriter, r *http.Request) {
	lang := r.PathValue("lang")
	if _, ok := catalog[lang]; !ok {
		http.NotFound(w, r)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: lang, Path: s.Prefix, MaxAge: 365 * 24 * 3600,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, HttpOnly: true})
	http.Redirect(w, r, safeNext(s.Prefix, r.URL.Query().Get("next")), http.StatusSeeOther)
}

func langOf(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil {
		if _, ok := catalog[c.Value]; ok {
			return c.Value
		}
	}
	return "ja"
}

func (s *Server) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	b, err := files.ReadFile("assets/" + name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	switch {
	case strings.HasSuffix(name, ".js"):
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.Write(b)
}

func (s *Server) home(w http.ResponseWriter, r *request) {
	switch {
	case can(r.user.Role, permPay):
		http.Redirect(w, r.Request, s.Prefix+"/desk", http.StatusSeeOther)
	case can(r.user.Role, permReserve):
		http.Redirect(w, r.Request, s.Prefix+"/reservations", http.StatusSeeOther)
	case can(r.user.Role, permAudit):
		http.Redirect(w, r.Request, s.Prefix+"/audit", http.StatusSeeOther)
	default:
		http.Redirect(w, r.Request, s.Prefix+"/desk", http.StatusSeeOther)
	}
}
