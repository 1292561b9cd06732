// Command mkdeb builds sterad's Debian package (`make package`):
//
//	go run ./packaging/cmd/mkdeb -binary bin/sterad -version "$(git describe --tags --always --dirty)" -out dist
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/sterad/sterad/packaging"
)

func main() {
	var (
		o    packaging.Options
		date string
	)
	flag.StringVar(&o.Root, "root", ".", "the repository's root directory")
	flag.StringVar(&o.Binary, "binary", "bin/sterad", "the sterad binary to ship (run for its man pages)")
	flag.StringVar(&o.Version, "version", "", "sterad's version, as `git describe --tags --always --dirty` prints it")
	flag.StringVar(&o.Arch, "arch", runtime.GOARCH, "the binary's Go architecture")
	flag.StringVar(&date, "date", "", "build date, RFC 3339 (default SOURCE_DATE_EPOCH, else now)")
	flag.StringVar(&o.OutDir, "out", "dist", "directory for the .deb")
	flag.Parse()
	if date != "" {
		t, err := time.Parse(time.RFC3339, date)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mkdeb: -date: %v\n", err)
			os.Exit(2)
		}
		o.Date = t
	}
	path, err := packaging.Build(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}
