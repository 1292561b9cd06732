package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newManCommand is `sterad man --dir DIR`: a man page (section 1) for
// every command, from the command tree itself. The Debian package ships
// them (packaging/).
func newManCommand() *cobra.Command {
	var dir, date string
	cmd := &cobra.Command{
		Use:    "man --dir DIR",
		Short:  "Write the man pages of every command into a directory",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return fmt.Errorf("--dir is required")
			}
			header := &doc.GenManHeader{Title: "STERAD", Section: "1", Source: "sterad " + version, Manual: "sterad Manual"}
			if date != "" {
				t, err := time.Parse(time.RFC3339, date)
				if err != nil {
					return fmt.Errorf("--date: %w", err)
				}
				header.Date = &t
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			return doc.GenManTree(root, header, dir)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory for the pages (created)")
	cmd.Flags().StringVar(&date, "date", "", "date printed in the pages, RFC 3339 (default SOURCE_DATE_EPOCH, else today)")
	return cmd
}
