package sterad_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyRules enforces the layering of docs/architecture.md: the
// domain imports only the standard library and decimal; adapters import
// the domain and the shared wire formats, never each other.
func TestDependencyRules(t *testing.T) {
	const mod = "github.com/sterad/sterad"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	allowed := map[string][]string{
		mod:                         {},
		mod + "/protocol":           {mod},
		mod + "/device":             {mod, mod + "/protocol"},
		mod + "/offline":            {mod},
		mod + "/settlement":         {mod},
		mod + "/api":                {mod},
		mod + "/simulator/acquirer": {mod, mod + "/protocol"},
		mod + "/simulator/terminal": {mod, mod + "/protocol"},
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		rules, checked := allowed[pkg]
		if !checked {
			continue // cmd/sterad wires everything
		}
		for _, imp := range imports {
			if pkg == mod && strings.Contains(imp, ".") && imp != "github.com/shopspring/decimal" {
				t.Errorf("the domain imports %s: only the standard library and decimal are allowed", imp)
			}
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			ok := false
			for _, a := range rules {
				ok = ok || imp == a
			}
			if !ok {
				t.Errorf("%s imports %s: adapters import the domain (and protocol), never each other", pkg, imp)
			}
		}
	}
}
