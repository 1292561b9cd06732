package console_test

import (
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad/console"
)

func TestAssetsMatchTheirChecksums(t *testing.T) {
	if err := console.CheckAssets(); err != nil {
		t.Fatal(err)
	}
}

func TestLoginSetsAStrictHttpOnlyCookie(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	res := c.login("sato", "correct horse battery")
	if res.code != http.StatusSeeOther || res.location != "/console/" {
		t.Fatalf("login: %d → %q", res.code, res.location)
	}
	var found bool
	for _, sc := range res.header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, "sterad_session=") {
			found = true
			for _, want := range []string{"HttpOnly", "SameSite=Strict", "Path=/console"} {
				if !strings.Contains(sc, want) {
					t.Errorf("session cookie %q lacks %s", sc, want)
				}
			}
			if strings.Contains(sc, "Secure") {
				t.Errorf("session cookie %q is Secure over plain HTTP: the browser would drop it", sc)
			}
		}
	}
	if !found {
		t.Fatal("no session cookie")
	}
	if got := c.get("/console/desk"); got.code != 200 || !strings.Contains(got.body, "FRONT001") {
		t.Fatalf("desk after login: %d", got.code)
	}
	if !slices.Contains(e.store.actions(), "sato login") {
		t.Errorf("audit log %v lacks the login", e.store.actions())
	}
}

func TestSessionCookieIsSecureOverTLS(t *testing.T) {
	e := newEnv(t)
	tls := httptestTLS(t, e)
	page := tls.get("/console/login")
	res := tls.post("/console/login", url.Values{"csrf": {field(t, csrfRE, page.body)}, "user": {"sato"}, "password": {"correct horse battery"}})
	for _, sc := range res.header.Values("Set-Cookie") {
		if strings.HasPrefix(sc, "sterad_session=") && !strings.Contains(sc, "Secure") {
			t.Fatalf("session cookie over TLS is not Secure: %q", sc)
		}
	}
}

func TestPagesNeedALogin(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	res := c.get("/console/desk")
	if res.code != http.StatusSeeOther || !strings.HasPrefix(res.location, "/console/login?next=") {
		t.Fatalf("desk without login: %d → %q", res.code, res.location)
	}
	if res := c.post("/console/desk/pay", url.Values{"op": {"sale"}}); res.code != http.StatusUnauthorized {
		t.Fatalf("POST without login: %d", res.code)
	}
}

// TestAccountLocksAfterFiveWrongPasswords: the fifth wrong password locks
// the account for an hour, even against the right password; an hour later
// the right password works again.
func TestAccountLocksAfterFiveWrongPasswords(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	for i := 1; i <= 4; i++ {
		res := c.login("sato", "wrong password")
		if res.code != http.StatusUnauthorized || !strings.Contains(res.body, "ユーザー名またはパスワードが正しくありません") {
			t.Fatalf("wrong password %d: %d", i, res.code)
		}
	}
	res := c.login("sato", "wrong password")
	if res.code != http.StatusForbidden || !strings.Contains(res.body, "1時間ロック") {
		t.Fatalf("fifth wrong password: %d\n%s", res.code, res.body)
	}
	if res := c.login("sato", "correct horse battery"); res.code != http.StatusForbidden {
		t.Fatalf("right password while locked: %d", res.code)
	}
	e.clock.Advance(59 * time.Minute)
	if res := c.login("sato", "correct horse battery"); res.code != http.StatusForbidden {
		t.Fatalf("right password after 59 minutes: %d", res.code)
	}
	e.clock.Advance(time.Minute)
	if res := c.login("sato", "correct horse battery"); res.code != http.StatusSeeOther {
		t.Fatalf("right password after the hour: %d", res.code)
	}
	if !slices.Contains(e.store.actions(), "sato login.lock") {
		t.Errorf("audit log %v lacks the lock", e.store.actions())
	}
}

func TestRightPasswordResetsTheCount(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	for range 4 {
		c.login("sato", "wrong password")
	}
	c.mustLogin("sato")
	for range 4 {
		if res := c.login("sato", "wrong password"); res.code != http.StatusUnauthorized {
			t.Fatalf("wrong password after a good login: %d (locked too early)", res.code)
		}
	}
}

func TestUnknownUserIsRefusedLikeAWrongPassword(t *testing.T) {
	e := newEnv(t)
	res := e.client(t).login("nobody", "whatever it is")
	if res.code != http.StatusUnauthorized || !strings.Contains(res.body, "ユーザー名またはパスワードが正しくありません") {
		t.Fatalf("unknown user: %d", res.code)
	}
}

func TestSessionEndsAfterFifteenIdleMinutes(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	c.mustLogin("sato")
	e.clock.Advance(14 * time.Minute)
	if res := c.get("/console/desk"); res.code != 200 {
		t.Fatalf("after 14 idle minutes: %d", res.code)
	}
	e.clock.Advance(14 * time.Minute) // 14 minutes after the last request: still alive
	if res := c.get("/console/desk"); res.code != 200 {
		t.Fatalf("14 minutes after the last request: %d", res.code)
	}
	e.clock.Advance(15 * time.Minute)
	if res := c.get("/console/desk"); res.code != http.StatusSeeOther {
		t.Fatalf("after 15 idle minutes: %d, want a redirect to the login", res.code)
	}
}

// TestPostWithoutCSRFTokenIsRefused: every form needs the session's
// token; without it or with another, 403 and nothing is done.
func TestPostWithoutCSRFTokenIsRefused(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	c.mustLogin("sato")
	idem := field(t, idemRE, c.get("/console/desk").body)
	for _, tok := range []string{"", "forged"} {
		form := url.Values{"op": {"sale"}, "terminal": {"FRONT001"}, "amount": {"1000"}, "idem": {idem}}
		if tok != "" {
			form.Set("csrf", tok)
		}
		res := c.post("/console/desk/pay", form)
		if res.code != http.StatusForbidden || !strings.Contains(res.body, "CSRF") {
			t.Fatalf("POST with csrf %q: %d", tok, res.code)
		}
	}
	if res := c.post("/console/logout", url.Values{}); res.code != http.StatusForbidden {
		t.Fatalf("logout without token: %d", res.code)
	}
	if n := len(e.txns.requests()); n != 0 {
		t.Fatalf("%d transactions submitted without a CSRF token", n)
	}
	// The login form has its own token.
	if res := c.post("/console/login", url.Values{"user": {"sato"}, "password": {"correct horse battery"}}); res.code != http.StatusForbidden {
		t.Fatalf("login without token: %d", res.code)
	}
}

// TestEveryFormCarriesACSRFToken renders the pages with forms and checks
// each POST form has the token.
func TestEveryFormCarriesACSRFToken(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	c.mustLogin("admin")
	formRE := regexp.MustCompile(`(?s)<form[^>]*method="post".*?</form>`)
	for _, p := range []string{"/console/desk", "/console/txns"} {
		body := c.get(p).body
		for _, f := range formRE.FindAllString(body, -1) {
			if !csrfRE.MatchString(f) {
				t.Errorf("%s: a form without a CSRF token:\n%s", p, f)
			}
		}
	}
}

func TestRolesLimitWhatUsersDo(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	csrf := c.mustLogin("kato") // auditor
	idem := "0123456789abcdef0123"
	res := c.post("/console/desk/pay", url.Values{"csrf": {csrf}, "op": {"sale"}, "terminal": {"FRONT001"}, "amount": {"1000"}, "idem": {idem}})
	if res.code != http.StatusForbidden {
		t.Fatalf("auditor starts a sale: %d", res.code)
	}
	if body := c.get("/console/desk").body; strings.Contains(body, `id="pay-form"`) {
		t.Error("the auditor sees the payment form")
	}
}

func TestLogoutEndsTheSession(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	csrf := c.mustLogin("sato")
	if res := c.post("/console/logout", url.Values{"csrf": {csrf}}); res.code != http.StatusSeeOther {
		t.Fatalf("logout: %d", res.code)
	}
	if res := c.get("/console/desk"); res.code != http.StatusSeeOther {
		t.Fatalf("desk after logout: %d", res.code)
	}
}

func TestLanguageSwitch(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	if body := c.get("/console/login").body; !strings.Contains(body, "パスワード") || !strings.Contains(body, `lang="ja"`) {
		t.Fatal("the login page is not in Japanese by default")
	}
	res := c.get("/console/lang/en?next=" + url.QueryEscape("/console/login"))
	if res.code != http.StatusSeeOther || res.location != "/console/login" {
		t.Fatalf("switch: %d → %q", res.code, res.location)
	}
	if body := c.get("/console/login").body; !strings.Contains(body, "Password") || strings.Contains(body, "パスワード") {
		t.Fatal("the login page is not in English after the switch")
	}
	if res := c.get("/console/lang/en?next=https://evil.example/"); res.location != "/console/" {
		t.Fatalf("switch redirects outside the console: %q", res.location)
	}
}

// TestCatalogComplete: every message key the templates and handlers use
// exists in both languages, and both have the same keys.
func TestCatalogComplete(t *testing.T) {
	ja, en := console.Catalog("ja"), console.Catalog("en")
	for k := range ja {
		if _, ok := en[k]; !ok {
			t.Errorf("%q is in Japanese only", k)
		}
	}
	for k := range en {
		if _, ok := ja[k]; !ok {
			t.Errorf("%q is in English only", k)
		}
	}
	keyRE := regexp.MustCompile(`(?:\.T|translate\(r\.lang,|s\.fail\(w, r, [^,]+,|renderLogin\(w, r, [^,]+,) "([a-z_.]+)"`)
	dynRE := regexp.MustCompile(`printf "([a-z_]+\.)%s"`)
	var prefixes []string
	files, _ := os.ReadDir(".")
	tmpls, _ := os.ReadDir("templates")
	var paths []string
	for _, f := range files {
		if strings.HasSuffix(f.Name(), ".go") && !strings.HasSuffix(f.Name(), "_test.go") {
			paths = append(paths, f.Name())
		}
	}
	for _, f := range tmpls {
		paths = append(paths, "templates/"+f.Name())
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range keyRE.FindAllStringSubmatch(string(b), -1) {
			if _, ok := ja[m[1]]; !ok {
				t.Errorf("%s uses %q, which the catalog lacks", p, m[1])
			}
		}
		for _, m := range dynRE.FindAllStringSubmatch(string(b), -1) {
			prefixes = append(prefixes, m[1])
		}
	}
	for _, p := range prefixes {
		n := 0
		for k := range ja {
			if strings.HasPrefix(k, p) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("no message starts with %q", p)
		}
	}
}
