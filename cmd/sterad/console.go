package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/console"
	"github.com/sterad/sterad/offline"
)

// withConsole serves the web console at /console/ beside the API on the
// same listener; the console calls the gateway in-process (no token in
// the browser).
func (m *Main) withConsole(apiHandler http.Handler) (http.Handler, error) {
	g := m.Gateway
	c := &console.Server{
		Transactions: g, Terminals: g, Queue: g, Batches: g, Vault: g, Reservations: g, Status: g, Payments: g,
		Settlement: &settlementReports{batches: g, fees: m.fees, calendar: m.calendar},
		Store:      m.DB, Clock: m.Clock, Logger: m.Logger.With("component", "console"),
		Location: m.Config.Location(), Blind: m.Config.CardData != sterad.CardDataClear,
	}
	h, err := c.Handler()
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", h)
	mux.Handle("/console", http.RedirectHandler("/console/", http.StatusMovedPermanently))
	mux.Handle("/", apiHandler)
	return mux, nil
}

// newUserCommand is `sterad user`: the console's users, kept in the
// store (the daemon must be stopped: the store has one writer).
func newUserCommand(g *globalOptions) *cobra.Command {
	var kekFile string
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Manage the web console's users (run while the daemon is stopped)",
		Long: `The web console (/console/) has no default account: create the first
administrator with

  sterad user add --role admin NAME

which asks for the password (or reads one line from stdin when it is not
a terminal). Roles: clerk, reservations, auditor, admin.`,
	}
	cmd.PersistentFlags().StringVar(&kekFile, "kek-file", "", "the key-encryption key (default: as the daemon finds it)")
	openStore := func() (*offline.DB, error) {
		cfg, err := g.config()
		if err != nil {
			return nil, err
		}
		keks, err := loadKEKsAt(cliKEKPath(cfg, kekFile), cfg.DataDir)
		if err != nil {
			return nil, err
		}
		opts := offline.DefaultOptions()
		opts.KEKs = keks
		db, err := offline.Open(cfg.DataDir, opts)
		if err != nil {
			return nil, storeRefusal(err)
		}
		return db, nil
	}
	// withNewPassword asks for a new password, then runs fn on the store.
	withNewPassword := func(cmd *cobra.Command, fn func(db *offline.DB, pw string) error) error {
		pw, err := readNewPassword(cmd.InOrStdin(), cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		db, err := openStore()
		if err != nil {
			return err
		}
		defer db.Close()
		return fn(db, pw)
	}
	var role string
	add := &cobra.Command{
		Use:   "add --role ROLE NAME",
		Short: "Create a console user; the password is asked for (or read from stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withNewPassword(cmd, func(db *offline.DB, pw string) error {
				if err := console.AddUser(cmd.Context(), db, args[0], role, pw, time.Now()); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "user %s (%s) created\n", args[0], role)
				return nil
			})
		},
	}
	add.Flags().StringVar(&role, "role", "", "clerk, reservations, auditor or admin")
	add.MarkFlagRequired("role")
	passwd := &cobra.Command{
		Use:   "passwd NAME",
		Short: "Set a console user's password (and lift a lock)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withNewPassword(cmd, func(db *offline.DB, pw string) error {
				if err := console.SetPassword(cmd.Context(), db, args[0], pw, time.Now(), "cli"); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "password of %s set\n", args[0])
				return nil
			})
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the console users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := openStore()
			if err != nil {
				return err
			}
			defer db.Close()
			users, err := db.ConsoleUsers(cmd.Context())
			if err != nil {
				return err
			}
			return printUsers(cmd.OutOrStdout(), users, time.Now())
		},
	}
	cmd.AddCommand(add, passwd, list)
	return cmd
}

func printUsers(w io.Writer, users []*sterad.ConsoleUser, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tSTATE\tLAST LOGIN")
	for _, u := range users {
		state := "active"
		switch {
		case u.Disabled:
			state = "disabled"
		case now.Before(u.LockedUntil):
			state = "locked until " + stamp(u.LockedUntil, "15:04")
		}
		last := "-"
		if !u.LastLogin.IsZero() {
			last = stamp(u.LastLogin, layoutMinutes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Role, state, last)
	}
	return tw.Flush()
}

// readNewPassword asks for a password twice on a terminal, or reads one
// line from a pipe.
func readNewPassword(in io.Reader, prompt io.Writer) (string, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		fmt.Fprint(prompt, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return "", errors.New("no password on stdin")
	}
	return strings.TrimRight(line, "\r\n"), nil
}
