package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/offline"
)

// RetentionConfig is the retention: block (docs/operations.md).
type RetentionConfig struct {
	// Transactions is how long transactions of closed batches stay in
	// the store before they are archived and removed (default 13
	// months: the card schemes' longest dispute window with a margin).
	Transactions Period `yaml:"transactions"`
	// Disabled keeps every transaction (the daily run does nothing;
	// sterad store retention still runs on demand).
	Disabled bool `yaml:"disabled"`
}

// DefaultRetention is retention.transactions when not configured.
var DefaultRetention = Period{Months: 13}

// minRetention is the shortest retention.transactions accepted.
const minRetention = 31 * 24 * time.Hour

// Period is a calendar period written as "13 months", "13mo", "400d",
// "400 days" or a Go duration ("9600h").
type Period struct {
	Months, Days int
	Dur          time.Duration
}

var periodRe = regexp.MustCompile(`^(\d+)\s*(mo|months?|d|days?)$`)

// ParsePeriod parses a Period.
func ParsePeriod(s string) (Period, error) {
	s = strings.TrimSpace(s)
	if m := periodRe.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err == nil && n < 10000 {
			if strings.HasPrefix(m[2], "mo") {
				return Period{Months: n}, nil
			}
			return Period{Days: n}, nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return Period{Dur: d}, nil
	}
	return Period{}, fmt.Errorf("%q is not a period like \"13 months\", \"400d\" or \"9600h\"", s)
}

// UnmarshalYAML parses a period string.
func (p *Period) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: a period must be a string like \"13 months\"", n.Line)
	}
	v, err := ParsePeriod(s)
	if err != nil {
		return fmt.Errorf("line %d: %s", n.Line, err)
	}
	*p = v
	return nil
}

func (p Period) IsZero() bool { return p == Period{} }

// Before returns now less the period.
func (p Period) Before(now time.Time) time.Time {
	return now.AddDate(0, -p.Months, -p.Days).Add(-p.Dur)
}

func (p Period) String() string {
	switch {
	case p.Months > 0 && p.Days == 0 && p.Dur == 0:
		return fmt.Sprintf("%d months", p.Months)
	case p.Days > 0 && p.Months == 0 && p.Dur == 0:
		return fmt.Sprintf("%d days", p.Days)
	}
	return p.Dur.String()
}

// period returns the configured retention, or the default.
func (r RetentionConfig) period() Period {
	if r.Transactions.IsZero() {
		return DefaultRetention
	}
	return r.Transactions
}

// validate checks the retention block; bad collects the problems.
func (r *RetentionConfig) validate(bad func(string, ...any)) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if p := r.period(); now.Sub(p.Before(now)) < minRetention {
		bad("retention.transactions %s is shorter than a month: refunds, disputes and the settlement need the transactions", p)
	}
}

// Retention's daily run: the first some minutes after the start (not
// during a restart's recovery), then every day.
const (
	retentionFirstRun = 10 * time.Minute
	retentionInterval = 24 * time.Hour
)

// startRetention runs retention daily until the daemon stops.
func (m *Main) startRetention(ctx context.Context) {
	if m.Config.Retention.Disabled {
		return
	}
	m.goRun(func() {
		wait := retentionFirstRun
		for {
			select {
			case <-ctx.Done():
				return
			case <-m.Clock.After(wait):
			}
			wait = retentionInterval
			m.runRetention(ctx, false)
		}
	})
}

// runRetention runs retention once, logs and counts it.
func (m *Main) runRetention(ctx context.Context, dryRun bool) (*offline.RetentionResult, error) {
	p := m.Config.Retention.period()
	res, err := m.DB.ApplyRetention(ctx, offline.RetentionOptions{Before: p.Before(m.Clock.Now()), DryRun: dryRun, Location: m.Config.Location()})
	if dryRun {
		return res, err
	}
	d := m.meters()
	if err != nil {
		d.retention.WithLabelValues("failed").Inc()
		m.Logger.Error("retention failed: transactions are kept; it runs again tomorrow", "err", err)
		return res, err
	}
	d.retention.WithLabelValues("ok").Inc()
	d.lastRet.Set(float64(time.Now().Unix()))
	if res.Removed > 0 {
		m.Logger.Info("retention: transactions archived and removed", "removed", res.Removed, "before", res.Before.Format(time.RFC3339), "kept", res.Kept)
	}
	return res, nil
}

// retentionRoute is the API route of sterad store retention.
const retentionRoute = "/v1/store/retention"

// Retention is the StoreService's retention on demand: the running
// daemon's store, now.
func (a storeAdmin) Retention(ctx context.Context, dryRun bool) (sterad.RetentionReport, error) {
	res, err := a.m.runRetention(ctx, dryRun)
	if err != nil {
		return sterad.RetentionReport{}, sterad.Errorf(sterad.EInternal, "retention_failed", "%s", err)
	}
	rep := sterad.RetentionReport{Before: res.Before, DryRun: res.DryRun, Removed: res.Removed, Kept: res.Kept}
	for _, a := range res.Archives {
		rep.Archives = append(rep.Archives, sterad.RetentionArchive{Month: a.Month, Path: a.Path, Transactions: a.Transactions})
	}
	return rep, nil
}

// newStoreRetentionCommand is `sterad store retention`.
func newStoreRetentionCommand(g *globalOptions) *cobra.Command {
	var dryRun, now bool
	var kekFile string
	cmd := &cobra.Command{
		Use:   "retention (--dry-run | --now)",
		Short: "Archive and remove the transactions older than retention.transactions",
		Long: `Transactions of closed batches older than retention.transactions (default
13 months) are written to DATA_DIR/archive/YYYY-MM.jsonl.gz (gzip'd JSON
lines, fsynced) and then removed from the store with their index entries.
A transaction still open (its batch open or closing, a pre-authorization
not completed, a queue item, an open reservation) stays, and so do the
transactions linked to it. The daemon does this every day; this runs it
now through the daemon's API, or on the store directly when the daemon is
stopped. --dry-run only counts. The file does not shrink: sterad store
compact (daemon stopped) returns the room.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dryRun == now {
				return errors.New("give --dry-run (count only) or --now (archive and remove)")
			}
			cfg, err := g.config()
			if err != nil {
				return err
			}
			res, err := retentionViaAPI(cmd.Context(), g, dryRun)
			if errors.Is(err, errNoDaemon) {
				res, err = retentionOffline(cmd.Context(), cfg, cliKEKPath(cfg, kekFile), dryRun)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json {
				return json.NewEncoder(out).Encode(res)
			}
			verb := "archived and removed"
			if res.DryRun {
				verb = "would be archived and removed (dry run)"
			}
			fmt.Fprintf(out, "%d transactions created before %s %s\n", res.Removed, res.Before.In(cfg.Location()).Format("2006-01-02 15:04 MST"), verb)
			for _, a := range res.Archives {
				fmt.Fprintf(out, "  %s: %d → %s\n", a.Month, a.Transactions, a.Path)
			}
			for why, n := range res.Kept {
				fmt.Fprintf(out, "  kept %d (%s)\n", n, why)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "count what would be removed; write nothing")
	cmd.Flags().BoolVar(&now, "now", false, "archive and remove now")
	cmd.Flags().StringVar(&kekFile, "kek-file", "", "the key-encryption key, when the daemon is stopped (default: as the daemon finds it)")
	return cmd
}

// errNoDaemon: the daemon's API cannot be reached.
var errNoDaemon = errors.New("the daemon is not running")

func retentionViaAPI(ctx context.Context, g *globalOptions, dryRun bool) (*offline.RetentionResult, error) {
	c, err := g.client()
	if err != nil {
		return nil, errNoDaemon
	}
	url := c.BaseURL + retentionRoute
	if dryRun {
		url += "?dry_run=true"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, errNoDaemon
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var eb api.ErrorBody
		if json.Unmarshal(body, &eb) == nil && eb.Error.Message != "" {
			return nil, fmt.Errorf("retention: %s (%d %s)", eb.Error.Message, resp.StatusCode, eb.Error.Code)
		}
		return nil, fmt.Errorf("retention: %s", resp.Status)
	}
	res := new(offline.RetentionResult)
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(res); err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	return res, nil
}

func retentionOffline(ctx context.Context, cfg Config, kekPath string, dryRun bool) (*offline.RetentionResult, error) {
	if !exists(filepath.Join(cfg.DataDir, "sterad.db")) {
		return nil, fmt.Errorf("no store in %s, and no daemon answers at %s", cfg.DataDir, cfg.API.Listen)
	}
	keks, err := loadKEKsAt(kekPath, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	opts := offline.DefaultOptions()
	opts.KEKs = keks
	db, err := offline.Open(cfg.DataDir, opts)
	if err != nil {
		return nil, storeRefusal(err)
	}
	defer db.Close()
	return db.ApplyRetention(ctx, offline.RetentionOptions{Before: cfg.Retention.period().Before(time.Now()), DryRun: dryRun, Location: cfg.Location()})
}

// newStoreCompactCommand is `sterad store compact`.
func newStoreCompactCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "compact",
		Short: "Shrink the store's file (the daemon must be stopped)",
		Long: `bbolt reuses the room of removed records but never gives it back to the
file system. This rewrites sterad.db into a new file holding only the data
(bbolt's compaction), checks it and renames it over the old one. The key
files and store.json are not touched. The daemon must be stopped: the
command refuses while it holds the store. Take a backup first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			res, err := offline.Compact(cfg.DataDir, false)
			if errors.Is(err, offline.ErrInUse) {
				fmt.Fprintf(cmd.ErrOrStderr(), "sterad store compact: the store in %s is in use: stop the daemon first (systemctl stop sterad), then run it again\n", cfg.DataDir)
				return &exitError{code: 1}
			}
			if err != nil {
				return err
			}
			if g.json {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "compacted %s: %s → %s\n", res.Path, mib(res.Before), mib(res.After))
			return nil
		},
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
