package sterad_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// layers is the layering of docs/architecture.md, package by package:
// which of the module's packages each may import, and which third-party
// modules. The domain imports only the standard library and decimal;
// adapters import the domain (and the wire formats of protocol), never
// each other; only cmd/sterad wires them all. A package that is not in
// this table fails the test: a new package is placed in a layer on
// purpose.
var layers = map[string]struct {
	internal []string // module packages, relative to the module ("" is the root)
	external []string // third-party module paths (prefixes)
}{
	"":                      {nil, []string{"github.com/shopspring/decimal"}},
	"protocol":              {[]string{""}, []string{"github.com/moov-io/iso8583", "github.com/shopspring/decimal"}},
	"device":                {[]string{"", "protocol"}, []string{"go.bug.st/serial", "github.com/google/gousb"}},
	"offline":               {[]string{""}, []string{"go.etcd.io/bbolt", "golang.org/x/crypto", "filippo.io/age", "google.golang.org/protobuf/encoding/protowire", "github.com/shopspring/decimal"}},
	"settlement":            {[]string{""}, []string{"github.com/shopspring/decimal"}},
	"gateway":               {[]string{""}, []string{"github.com/shopspring/decimal"}},
	"api":                   {[]string{""}, nil},
	"api/openapitest":       {[]string{"api"}, []string{"github.com/getkin/kin-openapi"}}, // tests only: the OpenAPI validator
	"console":               {[]string{""}, []string{"golang.org/x/crypto"}},
	"simulator/acquirer":    {[]string{"", "protocol", "simulator/dukpt"}, []string{"github.com/shopspring/decimal"}},
	"simulator/dukpt":       {nil, nil},
	"simulator/terminal":    {[]string{"", "protocol", "simulator/dukpt"}, []string{"github.com/creack/pty", "golang.org/x/term"}},
	"internal/pipetest":     {nil, nil},
	"packaging":             {nil, []string{"github.com/goreleaser/nfpm/v2"}},
	"packaging/cmd/mkdeb":   {[]string{"packaging"}, nil},
	"internal/testutil":     {nil, nil},
	"crashtest":             {nil, nil},
	"crashtest/brokenstore": {[]string{""}, nil},
	"modeltest":             {[]string{"", "gateway"}, nil},
	"cmd/sterad":            {[]string{"*"}, []string{"github.com/spf13/cobra", "gopkg.in/yaml.v3", "github.com/prometheus/client_golang", "github.com/oklog/ulid/v2", "github.com/schollz/progressbar/v3", "github.com/shopspring/decimal", "golang.org/x/term", "golang.org/x/sys"}},
}

// TestDependencyRules enforces layers on every package of the module.
func TestDependencyRules(t *testing.T) {
	const mod = "github.com/sterad/sterad"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], mod), "/")
		seen[pkg] = true
		rule, known := layers[pkg]
		if !known {
			t.Errorf("package %q is in no layer: add it to deps_test.go's table", fields[0])
			continue
		}
		for _, imp := range fields[1:] {
			switch {
			case imp == mod || strings.HasPrefix(imp, mod+"/"):
				dep := strings.TrimPrefix(strings.TrimPrefix(imp, mod), "/")
				if !slices.Contains(rule.internal, dep) && !slices.Contains(rule.internal, "*") {
					t.Errorf("%s imports %s: not allowed by its layer (%q)", fields[0], imp, rule.internal)
				}
			case strings.Contains(strings.SplitN(imp, "/", 2)[0], "."):
				if !slices.ContainsFunc(rule.external, func(p string) bool { return imp == p || strings.HasPrefix(imp, p+"/") }) {
					t.Errorf("%s imports %s: third-party modules allowed there are %q", fields[0], imp, rule.external)
				}
			}
		}
	}
	for pkg := range layers {
		if !seen[pkg] && pkg != "modeltest" {
			t.Errorf("the table names package %q, which does not exist", pkg)
		}
	}
}
