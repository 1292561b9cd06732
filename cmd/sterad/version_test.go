package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestVersionCommand: `sterad version` prints what the build stamped
// (the Makefile's -X main.version, main.commit, main.buildDate) and the
// Go toolchain, as text and under --json.
func TestVersionCommand(t *testing.T) {
	defer func(v, c, d string) { version, commit, buildDate = v, c, d }(version, commit, buildDate)
	version, commit, buildDate = "v1.2.0", "0123456789abcdef0123456789abcdef01234567", "2026-04-01T09:00:00+09:00"

	out, err := run(t, "version")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sterad v1.2.0\n", "commit:   0123456789abcdef0123456789abcdef01234567\n",
		"go:       " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n", "built:    2026-04-01T09:00:00+09:00\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("sterad version lacks %q:\n%s", want, out)
		}
	}

	out, err = run(t, "version", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("sterad version --json: %v\n%s", err, out)
	}
	want := map[string]string{"version": "v1.2.0", "commit": commit, "go_version": runtime.Version(),
		"platform": runtime.GOOS + "/" + runtime.GOARCH, "build_date": buildDate}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("--json %s = %q, want %q", k, v[k], w)
		}
	}
}

// TestManCommand: `sterad man --dir` writes a page per visible command,
// dated as asked, and none for itself.
func TestManCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man")
	if _, err := run(t, "man", "--dir", dir, "--date", "2026-04-01T09:00:00Z"); err != nil {
		t.Fatal(err)
	}
	for _, page := range []string{"sterad.1", "sterad-serve.1", "sterad-version.1", "sterad-keys-init.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `.TH "STERAD" "1" "Apr 2026"`) {
			t.Errorf("%s: header %.80q", page, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "sterad-man.1")); err == nil {
		t.Errorf("the hidden man command has a page")
	}
}
