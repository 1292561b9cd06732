package console_test

import (
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"testing"
)

// httptestTLS serves e's console over TLS and returns a client of it.
func httptestTLS(t *testing.T, e *env) *client {
	t.Helper()
	mux := http.NewServeMux()
	h, err := e.cons.Handler()
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/console/", h)
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	hc := srv.Client()
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	te := *e
	te.srv = srv
	return &client{t: t, e: &te, http: hc}
}
