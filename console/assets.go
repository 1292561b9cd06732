package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
)

// The console's assets are vendored in the repository and embedded in the
// binary: nothing is fetched at run time and there is no Node step.
//
//go:embed assets templates
var files embed.FS

// HTMXVersion is the vendored htmx (npm htmx.org, dist/htmx.min.js).
const HTMXVersion = "2.0.4"

// HTMXSHA256 is the SHA-256 of the vendored htmx.min.js as published on
// npm (npm pack htmx.org@2.0.4). The server refuses to start with another
// file.
const HTMXSHA256 = "e209dda5c8235479f3166defc7750e1dbcd5a5c1808b7792fc2e6733768fb447"

// CheckAssets verifies the embedded third-party assets against their
// pinned checksums.
func CheckAssets() error {
	b, err := fs.ReadFile(files, "assets/htmx.min.js")
	if err != nil {
		return fmt.Errorf("console: htmx asset: %w", err)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != HTMXSHA256 {
		return fmt.Errorf("console: htmx.min.js has SHA-256 %s, want %s (htmx %s)", got, HTMXSHA256, HTMXVersion)
	}
	return nil
}
