package api_test

import (
	"context"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	gotoken "go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/api/openapitest"
)

// echoHeader marks the answers of the stand-in simulator controls of
// these tests (sims): they echo, unlike the real controls the document
// describes (checked in cmd/sterad's e2e test).
const echoHeader = "X-Test-Echo"

// docValidator checks every exchange of the api tests that goes through
// serve or client against the OpenAPI document.
var docValidator = sync.OnceValues(func() (*openapitest.Validator, error) {
	v, err := openapitest.NewValidator()
	if err != nil {
		return nil, err
	}
	v.Skip(func(x openapitest.Exchange) bool { return x.Header.Get(echoHeader) != "" })
	return v, nil
})

// validating wraps h so that every request and answer is validated
// against the document; a mismatch fails t.
func validating(t *testing.T, h http.Handler) http.Handler {
	t.Helper()
	v, err := docValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v.Handler(t, h)
}

// TestMain checks, after a full run of the package's tests, that the
// fakes-based tests went through every operation of the document but the
// simulator controls (whose real answers cmd/sterad's e2e test checks).
func TestMain(m *testing.M) {
	code := m.Run()
	if code != 0 || flag.Lookup("test.run").Value.String() != "" {
		os.Exit(code)
	}
	v, err := docValidator()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	seen := v.Seen()
	var missing []string
	for _, op := range operations(v.Doc()) {
		if !strings.HasPrefix(op.path, "/v1/sim/") && seen[op.method+" "+op.path] == 0 {
			missing = append(missing, op.method+" "+op.path)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: no api test validated an exchange of these documented operations: %s\n", strings.Join(missing, ", "))
		os.Exit(1)
	}
	os.Exit(code)
}

type operation struct {
	method, path string
	op           *openapi3.Operation
}

func operations(doc *openapi3.T) []operation {
	var out []operation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			out = append(out, operation{method, path, op})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	return out
}

// The document is OpenAPI 3.1, loads, validates, and says what the API
// promises everywhere: the bearer token on everything but /healthz, 401
// and 500 with the error envelope, JSON errors.
func TestOpenAPIDocumentValidates(t *testing.T) {
	doc, err := openapitest.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	if doc.Security == nil || len(doc.Security) != 1 || (doc.Security)[0]["bearer"] == nil {
		t.Fatalf("the document's security is %v, want bearer", doc.Security)
	}
	if s := doc.Components.SecuritySchemes["bearer"]; s == nil || s.Value.Type != "http" || s.Value.Scheme != "bearer" {
		t.Fatalf("bearer scheme: %+v", s)
	}
	ids := map[string]bool{}
	for _, o := range operations(doc) {
		name := o.method + " " + o.path
		if ids[o.op.OperationID] || o.op.OperationID == "" {
			t.Errorf("%s: operationId %q missing or repeated", name, o.op.OperationID)
		}
		ids[o.op.OperationID] = true
		open := o.op.Security != nil && len(*o.op.Security) == 0
		if open != (o.path == "/healthz") {
			t.Errorf("%s: open to all is %v", name, open)
		}
		for code, r := range o.op.Responses.Map() {
			n, err := strconv.Atoi(code)
			if err != nil {
				t.Errorf("%s: response %q is not a status code", name, code)
				continue
			}
			if n >= 400 && o.path != "/healthz" && (r.Value.Content.Get("application/json") == nil || r.Value.Content.Get("application/json").Schema.Value.Properties["error"] == nil) {
				t.Errorf("%s: response %d is not the error envelope", name, n)
			}
		}
		if o.path != "/healthz" && (o.op.Responses.Status(401) == nil || o.op.Responses.Status(500) == nil) {
			t.Errorf("%s: no 401 or 500", name)
		}
	}
	// The error envelope, amounts and masked card numbers are as the
	// interface says.
	errSchema := doc.Components.Schemas["Error"].Value.Properties["error"].Value
	if !slices.Equal(errSchema.Required, []string{"code", "message"}) {
		t.Errorf("error requires %v", errSchema.Required)
	}
	txn := doc.Components.Schemas["Transaction"].Value
	for _, field := range []string{"amount", "masked_pan", "status", "op"} {
		if !slices.Contains(txn.Required, field) {
			t.Errorf("a transaction does not require %s", field)
		}
	}
	masked := doc.Components.Schemas["MaskedPAN"].Value
	for s, want := range map[string]bool{"411111******1111": true, "": true, "4111111111111111": false, "411111**1111": true, "****1111": false} {
		if err := masked.VisitJSON(s, openapi3.EnableJSONSchema2020()); (err == nil) != want {
			t.Errorf("masked_pan %q accepted %v", s, err == nil)
		}
	}
	amount := doc.Components.Schemas["Amount"].Value
	for v, want := range map[any]bool{"30000": true, 30000.0: false, "30,000": false} {
		if err := amount.VisitJSON(v, openapi3.EnableJSONSchema2020()); (err == nil) != want {
			t.Errorf("amount %v accepted %v", v, err == nil)
		}
	}
}

// GET /v1/openapi.json serves the document, with the token.
func TestOpenAPIServed(t *testing.T) {
	s := server(&fake{t: t})
	a := serve(t, s, call{method: "GET", path: "/v1/openapi.json"})
	if a.Code != 200 || a.Body != string(api.OpenAPI()) || !strings.HasPrefix(a.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%d %q %.100s", a.Code, a.Header.Get("Content-Type"), a.Body)
	}
	wantError(t, serve(t, s, call{method: "GET", path: "/v1/openapi.json", noToken: true}), 401, "unauthorized")
}

// muxPatterns returns the patterns the api package registers on its
// mux, read from its source: the keys of the route table and the first
// argument of every Handle and HandleFunc call.
func muxPatterns(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	pattern := regexp.MustCompile(`^((GET|POST|PUT|PATCH|DELETE) )?/`)
	set := map[string]bool{}
	fset := gotoken.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		add := func(e ast.Expr) {
			if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == gotoken.STRING {
				if s, _ := strconv.Unquote(lit.Value); pattern.MatchString(s) {
					set[s] = true
				}
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && (sel.Sel.Name == "Handle" || sel.Sel.Name == "HandleFunc") && len(n.Args) == 2 {
					add(n.Args[0])
				}
			case *ast.KeyValueExpr:
				if lit, ok := n.Key.(*ast.BasicLit); ok {
					if s, _ := strconv.Unquote(lit.Value); strings.Contains(s, " /") {
						add(n.Key)
					}
				}
			}
			return true
		})
	}
	var out []string
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// noRoutes are the mux's catch-alls: they answer 404 no_route.
var noRoutes = []string{"/", "/v1/sim/"}

// Every route the mux registers is in the document, and every operation
// of the document reaches its own route of the mux.
func TestOpenAPIRoutesMatchMux(t *testing.T) {
	v := openapitest.New(t)
	s := server(&fake{t: t}) // no token is sent: no service is called
	s.Metrics = http.NotFoundHandler()
	s.Simulators = sims{}
	s.Store = &storeAdmin{}
	s.Payments = &payments{}
	h := s.Handler()

	patterns := muxPatterns(t)
	if len(patterns) < 20 {
		t.Fatalf("found only %d mux patterns in the source: %v", len(patterns), patterns)
	}
	reached := map[string][]string{}
	for _, o := range operations(v.Doc()) {
		name := o.method + " " + o.path
		path := strings.NewReplacer("{id}", "FRONT001", "{n}", "7", "{reference}", "RSV-1").Replace(o.path)
		r := httptest.NewRequest(o.method, path, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch {
		case slices.Contains(noRoutes, r.Pattern):
			t.Errorf("%s is documented but the mux has no route for it (%q)", name, r.Pattern)
		case !slices.Contains(patterns, r.Pattern):
			t.Errorf("%s reached %q, not a pattern found in the source", name, r.Pattern)
		default:
			method, rest, ok := strings.Cut(r.Pattern, " ")
			if ok && (method != o.method || rest != o.path) || !ok && !strings.HasPrefix(o.path, r.Pattern) {
				t.Errorf("%s reached the mux pattern %q", name, r.Pattern)
			}
		}
		reached[r.Pattern] = append(reached[r.Pattern], name)
	}
	for _, p := range patterns {
		if !slices.Contains(noRoutes, p) && len(reached[p]) == 0 {
			t.Errorf("the mux registers %q, which the document does not describe", p)
		}
	}
	// The catch-alls stay undocumented: the document has no operation
	// there that a client could take for a route.
	for _, p := range noRoutes {
		if _, ok := reached[p]; ok {
			t.Errorf("documented operations %v fall into the catch-all %q", reached[p], p)
		}
	}
}

// storeAdmin is a fake StoreService.
type storeAdmin struct {
	backup func(w io.Writer, recipients []string) error
	rotate func(kekFile string) (sterad.KEKRotation, error)
}

func (a *storeAdmin) Backup(_ context.Context, w io.Writer, recipients []string) error {
	return a.backup(w, recipients)
}

func (a *storeAdmin) RotateKEK(_ context.Context, kekFile string) (sterad.KEKRotation, error) {
	return a.rotate(kekFile)
}

func (a *storeAdmin) Retention(_ context.Context, dryRun bool) (sterad.RetentionReport, error) {
	return sterad.RetentionReport{Before: time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC), DryRun: dryRun, Removed: 2,
		Kept:     map[string]int{},
		Archives: []sterad.RetentionArchive{{Month: "2025-10", Path: "/var/lib/sterad/archive/2025-10.jsonl.gz", Transactions: 2}}}, nil
}

func TestStoreRoutes(t *testing.T) {
	s := server(&fake{t: t})
	s.Store = &storeAdmin{
		backup: func(w io.Writer, recipients []string) error {
			if recipients[0] != "age1good" {
				return sterad.Errorf(sterad.EInvalid, "invalid_recipient", "not an age recipient")
			}
			_, err := io.WriteString(w, "age-encryption.org/v1\n…")
			return err
		},
		rotate: func(kekFile string) (sterad.KEKRotation, error) {
			if kekFile == "" {
				return sterad.KEKRotation{}, sterad.Errorf(sterad.EInvalid, "missing_kek_file", "give kek_file")
			}
			return sterad.KEKRotation{OldKEK: "/etc/sterad/kek.old", KEK: kekFile, CardKeys: 3}, nil
		},
	}
	for _, tt := range []struct {
		name, path, body string
		status           int
		want             string // the body's start, or the error code
	}{
		{"backup", "/v1/store/backup", `{"recipients": ["age1good"]}`, 200, "age-encryption.org/v1"},
		{"backup without recipients", "/v1/store/backup", `{}`, 400, "missing_recipient"},
		{"backup to a bad recipient", "/v1/store/backup", `{"recipients": ["age1bad"]}`, 400, "invalid_recipient"},
		{"backup with an unknown field", "/v1/store/backup", `{"recipients": ["age1good"], "to": "x"}`, 400, "malformed_json"},
		{"rotate", "/v1/keys/rotate", `{"kek_file": "/etc/sterad/kek.new"}`, 200, `{`},
		{"rotate without a file", "/v1/keys/rotate", `{}`, 400, "missing_kek_file"},
		{"retention", "/v1/store/retention", ``, 200, `{`},
		{"retention dry run", "/v1/store/retention?dry_run=true", ``, 200, `{`},
		{"retention with a bad dry_run", "/v1/store/retention?dry_run=maybe", ``, 400, "invalid_dry_run"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := serve(t, s, call{method: "POST", path: tt.path, body: tt.body})
			if tt.status != 200 {
				wantError(t, a, tt.status, tt.want)
				return
			}
			if a.Code != 200 || !strings.HasPrefix(a.Body, tt.want) {
				t.Fatalf("%d %s", a.Code, a.Body)
			}
		})
	}
}
