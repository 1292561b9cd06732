package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/offline"
)

// cliKEKPath is the KEK file a command run beside the daemon uses: as the
// daemon finds it, and the simulation's own when only that one exists.
func cliKEKPath(cfg Config, flag string) string {
	if flag != "" {
		return flag
	}
	p, src := kekPath(cfg, false)
	if src == "default" && !exists(p) && exists(simulateKEKPath(cfg.DataDir)) {
		return simulateKEKPath(cfg.DataDir)
	}
	return p
}

func newStoreCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "store", Short: "Check the store, or start it without lost card keys (daemon stopped)"}
	var kekFile string
	check := &cobra.Command{
		Use:   "check",
		Short: "Run bbolt's consistency check and the store's own checks (the daemon must be stopped)",
		Long: `Open the store read-only, run bbolt's consistency check (every page
reachable once, no page freed twice), check store.json against the database
and, when the key-encryption key is found, the key files, and list the
kept cards whose key is lost. Exits 1 when anything is wrong.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var keks []*offline.KEK
			if ks, err := loadKEKsAt(cliKEKPath(cfg, kekFile), cfg.DataDir); err == nil {
				keks = ks
			} else {
				fmt.Fprintf(out, "key files not checked: %v\n", err)
			}
			res, err := offline.Check(cfg.DataDir, keks...)
			if err != nil {
				return err
			}
			if g.json {
				return json.NewEncoder(out).Encode(res)
			}
			fmt.Fprintf(out, "store %s (schema %d, created %s): %d transactions, %d kept cards\n",
				orDash(res.Identity.StoreID), res.Identity.Schema, res.Identity.CreatedAt.Format("2006-01-02 15:04:05Z07:00"), res.Txns, res.Cards)
			for _, p := range res.Problems {
				fmt.Fprintf(out, "PROBLEM: %s\n", p)
			}
			for _, o := range res.LostKeys {
				fmt.Fprintf(out, "LOST CARD KEY: %s\n", o)
			}
			if len(res.Problems) > 0 || len(res.LostKeys) > 0 {
				fmt.Fprintln(out, "the store is damaged: restore it from a backup (sterad restore)")
				return &exitError{code: 1}
			}
			fmt.Fprintln(out, "ok: bbolt's consistency check found nothing wrong")
			return nil
		},
	}
	check.Flags().StringVar(&kekFile, "kek-file", "", "the key-encryption key (default: as the daemon finds it)")
	forget := &cobra.Command{
		Use:   "forget-card-keys",
		Short: "Start a store whose card key file is lost without it (the daemon must be stopped)",
		Long: `When keys/dek.slots is lost and no backup has it, the daemon refuses to
start. This writes an empty card key file: every kept card becomes
unreadable (the store lists them, and the gateway never sends a
transaction without its card data). Prefer sterad restore.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			keks, err := loadKEKsAt(cliKEKPath(cfg, kekFile), cfg.DataDir)
			if err != nil {
				return err
			}
			opts := offline.DefaultOptions()
			opts.KEKs, opts.ForgetLostCardKeys = keks, true
			db, err := offline.Open(cfg.DataDir, opts)
			if err != nil {
				return storeRefusal(err)
			}
			defer db.Close()
			lost, err := db.LostCardKeys(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d kept cards cannot be read any more:\n", len(lost))
			for _, o := range lost {
				fmt.Fprintln(cmd.OutOrStdout(), "  "+o)
			}
			return nil
		},
	}
	forget.Flags().StringVar(&kekFile, "kek-file", "", "the key-encryption key (default: as the daemon finds it)")
	cmd.AddCommand(check, forget, newStoreRetentionCommand(g), newStoreCompactCommand(g))
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// storeAdmin is the daemon's StoreService: the API's backup and key
// rotation routes call it.
type storeAdmin struct{ m *Main }

var _ sterad.StoreService = storeAdmin{}

// Backup takes a consistent copy of the running store (offline.DB.Backup)
// encrypted to the age recipients.
func (a storeAdmin) Backup(ctx context.Context, w io.Writer, recipients []string) error {
	if _, err := offline.ParseBackupRecipients(recipients); err != nil {
		return sterad.Errorf(sterad.EInvalid, "bad_recipient", "%s", err)
	}
	if err := a.m.DB.BackupEncrypted(ctx, w, recipients); err != nil {
		return err
	}
	a.m.Logger.Info("backup taken", "store", a.m.DB.Identity().StoreID)
	return nil
}

func newBackupCommand(g *globalOptions) *cobra.Command {
	var to, recipFile string
	var recips []string
	cmd := &cobra.Command{
		Use:   "backup --to FILE (--recipient age1… | --recipients-file FILE)",
		Short: "Take a hot backup of the running daemon's store, encrypted with age",
		Long: `Ask the running daemon for a consistent copy of its store (the database as
of one read transaction, store.json and the key files, still wrapped under
the key-encryption key) encrypted to age recipients, and write it to FILE.
Transactions go on meanwhile. Restoring it needs the age identity AND the
key-encryption key: keep them apart from the backups.

  sterad backup keygen --out backup.key       # once: prints the recipient
  sterad backup --to store.age --recipient age1…`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return errors.New("give --to FILE")
			}
			if recipFile != "" {
				b, err := os.ReadFile(recipFile)
				if err != nil {
					return err
				}
				recips = append(recips, recipientLines(b)...)
			}
			if len(recips) == 0 {
				return errors.New("give --recipient age1… or --recipients-file FILE: the backup is encrypted to them")
			}
			if _, err := offline.ParseBackupRecipients(recips); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			n, err := fetchBackup(cmd.Context(), c, recips, to)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backup written to %s (%d bytes, encrypted with age)\n", to, n)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the backup file to write")
	cmd.Flags().StringArrayVar(&recips, "recipient", nil, "age recipient (age1…) to encrypt to; repeatable")
	cmd.Flags().StringVar(&recipFile, "recipients-file", "", "a file of age recipients, one per line")

	var keyOut string
	keygen := &cobra.Command{
		Use:   "keygen",
		Short: "Create an age identity for backups and print its recipient",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, recipient, err := offline.NewBackupIdentity()
			if err != nil {
				return err
			}
			text := fmt.Sprintf("# sterad backup identity: keep it apart from the backups\n# recipient: %s\n%s\n", recipient, id)
			if keyOut == "" {
				fmt.Fprint(cmd.OutOrStdout(), text)
				return nil
			}
			f, err := os.OpenFile(keyOut, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			if _, err := f.WriteString(text); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "identity written to %s\nrecipient: %s\n", keyOut, recipient)
			return nil
		},
	}
	keygen.Flags().StringVar(&keyOut, "out", "", "write the identity to this file (mode 0600) instead of standard output")
	cmd.AddCommand(keygen)
	return cmd
}

func recipientLines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// fetchBackup streams the daemon's backup into to (through to.tmp, fsynced
// and renamed once complete).
func fetchBackup(ctx context.Context, c *api.Client, recips []string, to string) (int64, error) {
	body, _ := json.Marshal(api.BackupRequest{Recipients: recips})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+"/v1/store/backup", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("call sterad at %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var eb api.ErrorBody
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if json.Unmarshal(data, &eb) == nil && eb.Error.Message != "" {
			return 0, fmt.Errorf("backup: %s (%d %s)", eb.Error.Message, resp.StatusCode, eb.Error.Code)
		}
		return 0, fmt.Errorf("backup: %s", resp.Status)
	}
	tmp := to + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, resp.Body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, to)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("backup: %w (nothing was written to %s)", err, to)
	}
	return n, nil
}

func newRestoreCommand(g *globalOptions) *cobra.Command {
	var from, identity, kekFile string
	cmd := &cobra.Command{
		Use:   "restore --from FILE --identity FILE --data DIR",
		Short: "Restore a store from a backup into an empty data directory",
		Long: `Decrypt a backup (sterad backup) with its age identity and write the store
into DIR, which must not hold a store. The store is opened to check it
before it is put in place: the key-encryption key it was backed up under
must be here (kek_file, STERAD_KEK_FILE, --kek-file).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || identity == "" {
				return errors.New("give --from FILE and --identity FILE")
			}
			cfg, err := g.config()
			if err != nil {
				return err
			}
			keks, err := loadKEKsAt(cliKEKPath(cfg, kekFile), cfg.DataDir)
			if err != nil {
				return err
			}
			idb, err := os.ReadFile(identity)
			if err != nil {
				return err
			}
			f, err := os.Open(from)
			if err != nil {
				return err
			}
			defer f.Close()
			opts := offline.DefaultOptions()
			opts.KEKs = keks
			id, err := offline.RestoreEncrypted(f, idb, cfg.DataDir, opts)
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored store %s (created %s) into %s\n", id.StoreID, id.CreatedAt.Format("2006-01-02"), filepath.Clean(cfg.DataDir))
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the backup file")
	cmd.Flags().StringVar(&identity, "identity", "", "the age identity file (sterad backup keygen)")
	cmd.Flags().StringVar(&kekFile, "kek-file", "", "the key-encryption key (default: kek_file, STERAD_KEK_FILE or /etc/sterad/kek)")
	return cmd
}
