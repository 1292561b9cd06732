package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// commit and buildDate are set at build time, like version:
// -ldflags "-X main.commit=… -X main.buildDate=…" (the Makefile does).
var (
	commit    = ""
	buildDate = ""
)

// versionInfo is what `sterad version` prints.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
	BuildDate string `json:"build_date"`
}

// buildVersion reads the build's version: the -X values, else what the Go
// toolchain recorded (a build with VCS stamping), else "unknown".
func buildVersion() versionInfo {
	v := versionInfo{Version: version, Commit: commit, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH, BuildDate: buildDate}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && v.Commit == "":
				v.Commit = s.Value
			case s.Key == "vcs.time" && v.BuildDate == "":
				v.BuildDate = s.Value
			}
		}
	}
	if v.Commit == "" {
		v.Commit = "unknown"
	}
	if v.BuildDate == "" {
		v.BuildDate = "unknown"
	}
	return v
}

func newVersionCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print sterad's version, commit, Go version and build date",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := buildVersion()
			out := cmd.OutOrStdout()
			if g.json {
				return printJSON(out, v)
			}
			fmt.Fprintf(out, "sterad %s\ncommit:   %s\ngo:       %s %s\nbuilt:    %s\n", v.Version, v.Commit, v.GoVersion, v.Platform, v.BuildDate)
			return nil
		},
	}
}
