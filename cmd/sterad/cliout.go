package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	_ "time/tzdata" // the merchant's zone even on a host without zoneinfo

	"github.com/spf13/cobra"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
)

// Exit codes of the sterad command (docs/cli.md "Exit codes").
const (
	ExitOK          = 0 // approved, or done
	ExitFailure     = 1 // anything else that went wrong
	ExitDeclined    = 2 // the card or the request was declined (or the guest cancelled)
	ExitPending     = 3 // the outcome is not final or not known: look again with `sterad txn show`
	ExitBadInput    = 4 // refused as asked: a usage error, or the API's 4xx
	ExitUnavailable = 5 // the daemon cannot be reached, or answers 503
)

// cliZone is the zone the CLI shows times in: the merchant's
// (settlement.timezone), set when a command loads its configuration.
var cliZone atomic.Pointer[time.Location]

// merchantZone returns the zone times are shown in (Asia/Tokyo by default).
func merchantZone() *time.Location {
	if z := cliZone.Load(); z != nil {
		return z
	}
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		return time.UTC
	}
	return loc
}

// setMerchantZone makes the CLI show times in the configuration's zone.
func setMerchantZone(cfg Config) {
	if loc, err := time.LoadLocation(cfg.Settlement.Timezone); err == nil && cfg.Settlement.Timezone != "" {
		cliZone.Store(loc)
	}
}

// stamp shows t in the merchant's zone with the zone named:
// "2026-11-21 10:00:03 JST". The layout is one of the constants below.
func stamp(t time.Time, layout string) string {
	if t.IsZero() {
		return ""
	}
	return t.In(merchantZone()).Format(layout + " MST")
}

// Layouts of stamp.
const (
	layoutSeconds = "2006-01-02 15:04:05"
	layoutMinutes = "2006-01-02 15:04"
	layoutShort   = "01-02 15:04:05"
	layoutClock   = "15:04:05"
	layoutMillis  = "15:04:05.000"
)

// today is the merchant's date now.
func today() sterad.Date {
	return sterad.DateOf(time.Now().In(merchantZone()))
}

// cliError is an error with its exit code and, for --json, its code.
type cliError struct {
	exit int
	code string
	err  error
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

// usageErrorf is bad input found before anything was asked of the daemon.
func usageErrorf(format string, args ...any) error {
	return &cliError{exit: ExitBadInput, code: "usage", err: fmt.Errorf(format, args...)}
}

// outcomeError ends a command that printed its result with the exit code
// of a transaction's status: nothing more is printed.
type outcomeError struct {
	exit   int
	status string
}

func (e *outcomeError) Error() string { return "transaction " + e.status }

// exitForStatus is the exit code of a transaction's status: approved and
// stood in (approved offline) 0; declined and cancelled 2; pending,
// unknown and reversed (the outcome was unknown and the acquirer confirmed
// a reversal: no money moved, the guest may have seen an approval) 3.
func exitForStatus(status string) int {
	switch sterad.Status(status) {
	case sterad.StatusApproved, sterad.StatusStoodIn, sterad.StatusVoided:
		return ExitOK
	case sterad.StatusDeclined, sterad.StatusCancelled:
		return ExitDeclined
	default:
		return ExitPending
	}
}

// transactionOutcome returns nil or the outcomeError of t's status.
func transactionOutcome(t *api.Transaction) error {
	if code := exitForStatus(t.Status); code != ExitOK {
		return &outcomeError{exit: code, status: t.Status}
	}
	return nil
}

// exitCode is the exit code of err (nil: 0).
func exitCode(err error) int {
	var ce *cliError
	var oe *outcomeError
	var ex *exitError
	var ae *api.Error
	var ue *url.Error
	var ne net.Error
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &oe):
		return oe.exit
	case errors.As(err, &ex):
		return ex.code
	case errors.As(err, &ce):
		return ce.exit
	case errors.As(err, &ae):
		if ae.Transaction != nil {
			return exitForStatus(ae.Transaction.Status)
		}
		switch {
		case ae.Status == 503:
			return ExitUnavailable
		case ae.Status == 401 || ae.Status == 403:
			return ExitFailure
		case ae.Status >= 400 && ae.Status < 500:
			return ExitBadInput
		}
		return ExitFailure
	case errors.As(err, &ue), errors.As(err, &ne):
		return ExitUnavailable
	}
	return ExitFailure
}

// errorCode is the code of err in a --json error.
func errorCode(err error) string {
	var ce *cliError
	var ae *api.Error
	switch {
	case errors.As(err, &ce):
		return ce.code
	case errors.As(err, &ae):
		return ae.Code
	}
	if exitCode(err) == ExitUnavailable {
		return "unavailable"
	}
	return "error"
}

// errorMessage is err for a person: an API error without its status.
func errorMessage(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) && err == error(ae) {
		return ae.Message
	}
	return err.Error()
}

// Execute runs the sterad command with args and returns its exit code:
// errors go to stderr, or as {"error": {"code", "message"}} to stdout
// under --json (docs/cli.md).
func Execute(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := NewRootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	if isUsageError(err) {
		err = &cliError{exit: ExitBadInput, code: "usage", err: err}
	}
	var oe *outcomeError
	var ex *exitError
	if errors.As(err, &oe) || errors.As(err, &ex) {
		return exitCode(err) // the command printed what happened
	}
	if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
		body := api.ErrorBody{Error: api.ErrorDetail{Code: errorCode(err), Message: errorMessage(err)}}
		var ae *api.Error
		if errors.As(err, &ae) {
			body.Error.Transaction = ae.Transaction
		}
		printJSON(stdout, body)
	} else {
		fmt.Fprintln(stderr, "sterad:", err)
		if isUsageError(err) && cmd != nil {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return exitCode(err)
}

// usageFlagError marks cobra's flag and argument errors as usage errors.
type usageFlagError struct{ error }

func (e usageFlagError) Unwrap() error { return e.error }

func isUsageError(err error) bool {
	var ue usageFlagError
	if errors.As(err, &ue) {
		return true
	}
	var ce *cliError
	if errors.As(err, &ce) && ce.code == "usage" {
		return true
	}
	// cobra's own: an unknown command or a missing required flag.
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "required flag") ||
		strings.HasPrefix(s, "unknown flag") || strings.HasPrefix(s, "unknown shorthand flag")
}

// markUsageErrors makes every flag and argument error of the command tree
// a usage error (exit 4).
func markUsageErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageFlagError{err} })
	if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error {
			if err := args(c, a); err != nil {
				return usageFlagError{err}
			}
			return nil
		}
	}
	for _, c := range cmd.Commands() {
		markUsageErrors(c)
	}
}

// checkoutOutcome is the exit of a check-out: its card charge's, or a
// refund's when one is not final.
func checkoutOutcome(r *api.CheckoutResult) error {
	if r.Transaction != nil {
		if err := transactionOutcome(r.Transaction); err != nil {
			return err
		}
	}
	for _, t := range r.Refunds {
		if err := transactionOutcome(t); err != nil {
			return err
		}
	}
	return nil
}

// printOutcomeNote says what a result that is not a plain approval means
// for the clerk.
func printOutcomeNote(w io.Writer, t *api.Transaction) {
	switch sterad.Status(t.Status) {
	case sterad.StatusStoodIn:
		fmt.Fprintln(w, "note: approved offline (stood in): sterad sends it to the acquirer when the link is back; the issuer may still decline it (sterad status shows an alert then)")
	case sterad.StatusPending:
		fmt.Fprintf(w, "note: not final yet: see it with `sterad txn show %s`\n", t.ID)
	case sterad.StatusUnknown:
		fmt.Fprintf(w, "note: the outcome is not known yet: sterad reverses it with the acquirer; do not charge again before `sterad txn show %s` says it is reversed\n", t.ID)
	case sterad.StatusReversed:
		fmt.Fprintln(w, "note: the outcome was unknown and has been reversed: no money moved; charge again if needed")
	}
}

// reportRange is the settlement report's range: by default this month
// (its first day to today); --from alone runs to the end of its month;
// --to alone starts on the first of its month.
func reportRange(from, to string, now sterad.Date) (string, string, error) {
	parse := func(flag, s string) (sterad.Date, error) {
		d, err := sterad.ParseDate(s)
		if err != nil {
			return d, usageErrorf("--%s %q: use YYYY-MM-DD", flag, s)
		}
		return d, nil
	}
	switch {
	case from == "" && to == "":
		return sterad.Date{Year: now.Year, Month: now.Month, Day: 1}.String(), now.String(), nil
	case to == "":
		f, err := parse("from", from)
		if err != nil {
			return "", "", err
		}
		first := sterad.Date{Year: f.Year, Month: f.Month, Day: 1}
		return from, sterad.DateOf(first.Time(time.UTC).AddDate(0, 1, -1)).String(), nil
	case from == "":
		t, err := parse("to", to)
		if err != nil {
			return "", "", err
		}
		return sterad.Date{Year: t.Year, Month: t.Month, Day: 1}.String(), to, nil
	}
	return from, to, nil
}
