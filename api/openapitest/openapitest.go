// Package openapitest checks real requests and answers of the API against
// its OpenAPI document (api/openapi.json) with kin-openapi: a middleware
// for handler tests and a transport for clients of a running daemon.
// Every exchange that passes through is validated, and a mismatch fails
// the test.
//
// The rules: an exchange on a documented operation must have a request
// that matches the document, or else be refused (401 when the bearer
// token is missing, another 4xx when the request is bad); its answer
// must match what the document says for its status, and its status must
// be one the operation documents. An exchange on an undocumented route
// must be answered 404 (or 401) with the error envelope.
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/sterad/sterad/api"
)

// Load loads the API's document and validates it.
func Load(ctx context.Context) (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	loader.Context = ctx
	doc, err := loader.LoadFromData(api.OpenAPI())
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if err := doc.Validate(ctx); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	return doc, nil
}

// Validator validates exchanges against the document.
type Validator struct {
	doc    *openapi3.T
	router routers.Router

	skip func(Exchange) bool

	mu   sync.Mutex
	seen map[string]int // "METHOD /path" of the document → exchanges checked
}

// New returns a validator of the API's document; it fails tb if the
// document does not load or validate.
func New(tb testing.TB) *Validator {
	tb.Helper()
	v, err := NewValidator()
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// NewValidator returns a validator of the API's document, or why the
// document does not load or validate.
func NewValidator() (*Validator, error) {
	doc, err := Load(context.Background())
	if err != nil {
		return nil, fmt.Errorf("OpenAPI document: %w", err)
	}
	// Routes are matched on the path alone: a test server listens
	// anywhere.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("OpenAPI router: %w", err)
	}
	return &Validator{doc: doc, router: router, seen: map[string]int{}}, nil
}

// Skip makes the validator pass over the exchanges skip reports (a
// test's stand-in for a handler the document describes otherwise, such
// as the simulators' controls): use it sparingly.
func (v *Validator) Skip(skip func(Exchange) bool) { v.skip = skip }

// Doc returns the loaded document.
func (v *Validator) Doc() *openapi3.T { return v.doc }

// Seen returns how many exchanges were checked per documented operation
// ("GET /v1/transactions/{id}").
func (v *Validator) Seen() map[string]int {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make(map[string]int, len(v.seen))
	for k, n := range v.seen {
		out[k] = n
	}
	return out
}

var options = func() *openapi3filter.Options {
	o := &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
			if in.SecurityScheme == nil || in.SecurityScheme.Type != "http" || in.SecurityScheme.Scheme != "bearer" {
				return fmt.Errorf("unknown security scheme %q", in.SecuritySchemeName)
			}
			tok, ok := strings.CutPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ")
			if !ok || tok == "" {
				return errors.New("no bearer token")
			}
			return nil
		},
	}
	// Say where and why, not the whole schema.
	o.WithCustomSchemaErrorFunc(func(e *openapi3.SchemaError) string {
		return "/" + strings.Join(e.JSONPointer(), "/") + ": " + e.Reason
	})
	return o
}()

// Exchange is one request and its answer.
type Exchange struct {
	Request     *http.Request // its Body is not read: RequestBody is
	RequestBody []byte
	Status      int
	Header      http.Header
	Body        []byte
}

// Check validates one exchange; nil when it matches the document.
func (v *Validator) Check(ctx context.Context, x Exchange) error {
	if v.skip != nil && v.skip(x) {
		return nil
	}
	req := x.Request.Clone(ctx)
	req.Body = io.NopCloser(bytes.NewReader(x.RequestBody))
	req.ContentLength = int64(len(x.RequestBody))
	if len(x.RequestBody) > 0 && req.Header.Get("Content-Type") == "" {
		// The API reads every body as JSON, whatever its Content-Type
		// says (api.DecodeJSON): a body without one is taken as JSON.
		req.Header.Set("Content-Type", "application/json")
	}
	if req.URL.RawPath != "" {
		// A path parameter with an escaped slash (a transaction id
		// "T/1"): route on the path as sent.
		u := *req.URL
		u.Path, u.RawPath = req.URL.RawPath, ""
		req.URL = &u
	}
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		// Not a documented operation: the API must say there is none.
		if x.Status != http.StatusNotFound && x.Status != http.StatusUnauthorized {
			return fmt.Errorf("%s %s is not in the document, but was answered %d", x.Request.Method, x.Request.URL.Path, x.Status)
		}
		return checkErrorEnvelope(x)
	}
	key := x.Request.Method + " " + route.Path
	v.mu.Lock()
	v.seen[key]++
	v.mu.Unlock()

	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: options}
	reqErr := openapi3filter.ValidateRequest(ctx, in)
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: x.Status, Header: x.Header, Options: options}
	out.SetBodyBytes(x.Body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("%s: the answer %d does not match the document: %v\nbody: %s", key, x.Status, err, clip(x.Body))
	}
	if reqErr == nil {
		return nil
	}
	var sec *openapi3filter.SecurityRequirementsError
	switch {
	case errors.As(reqErr, &sec):
		if x.Status != http.StatusUnauthorized {
			return fmt.Errorf("%s without a bearer token was answered %d, not 401", key, x.Status)
		}
	case x.Status < 400 || x.Status > 499:
		return fmt.Errorf("%s: the request does not match the document (%v) but was answered %d", key, reqErr, x.Status)
	}
	return nil
}

func checkErrorEnvelope(x Exchange) error {
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(x.Body, &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
		return fmt.Errorf("%s %s: answer %d is not the error envelope: %s", x.Request.Method, x.Request.URL.Path, x.Status, clip(x.Body))
	}
	return nil
}

func clip(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

// Handler wraps h: every request and answer passing through is checked,
// and a mismatch fails tb.
func (v *Validator) Handler(tb testing.TB, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Body != nil {
			var err error
			body, err = io.ReadAll(r.Body)
			if err != nil {
				tb.Errorf("openapitest: read the request body: %v", err)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		orig := r.Clone(r.Context())
		rec := &recorder{ResponseWriter: w, header: http.Header{}}
		h.ServeHTTP(rec, r)
		if !rec.wrote && len(rec.body.Bytes()) == 0 && r.Context().Err() != nil {
			return // the client left before any answer: nothing to check
		}
		status := rec.status
		if !rec.wrote {
			status, rec.header = http.StatusOK, w.Header().Clone()
		}
		x := Exchange{Request: orig, RequestBody: body, Status: status, Header: rec.header, Body: rec.body.Bytes()}
		if err := v.Check(context.Background(), x); err != nil {
			tb.Errorf("openapitest: %v", err)
		}
	})
}

// recorder passes an answer through and keeps a copy of it.
type recorder struct {
	http.ResponseWriter
	header http.Header // as sent
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.wrote, r.status = true, code
		r.header = r.ResponseWriter.Header().Clone()
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if !r.wrote {
		// As net/http does on a first Write without WriteHeader.
		if h := r.ResponseWriter.Header(); h.Get("Content-Type") == "" && h.Get("Transfer-Encoding") == "" {
			h.Set("Content-Type", http.DetectContentType(p))
		}
		r.WriteHeader(http.StatusOK)
	}
	r.body.Write(p)
	return r.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush flushes the answer written so far.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Transport wraps rt (nil: http.DefaultTransport): every request sent
// and answer received is checked, and a mismatch fails tb.
func (v *Validator) Transport(tb testing.TB, rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		var body []byte
		if req.Body != nil {
			var err error
			body, err = io.ReadAll(req.Body)
			req.Body.Close()
			if err != nil {
				return nil, err
			}
			req = req.Clone(req.Context())
			req.Body = io.NopCloser(bytes.NewReader(body))
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			return resp, err
		}
		data, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr != nil {
			// A cut-off answer (an aborted backup): the client sees
			// the error.
			resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(data), errReader{rerr}))
			return resp, nil
		}
		resp.Body = io.NopCloser(bytes.NewReader(data))
		x := Exchange{Request: req, RequestBody: body, Status: resp.StatusCode, Header: resp.Header, Body: data}
		if err := v.Check(context.Background(), x); err != nil {
			tb.Errorf("openapitest: %v", err)
		}
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
