package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/offline"
)

// DefaultKEKFile is where the key-encryption key lives when neither
// kek_file, STERAD_KEK_FILE nor a systemd credential names one.
const DefaultKEKFile = "/etc/sterad/kek"

// kekPath returns the KEK file of a configuration and where it came from:
// kek_file (or STERAD_KEK_FILE, applied over it), the systemd credential
// $CREDENTIALS_DIRECTORY/kek, for `serve --simulate` a file beside the
// data directory (DATA_DIR.kek), and /etc/sterad/kek.
func kekPath(cfg Config, simulate bool) (path, source string) {
	if cfg.KEKFile != "" {
		return cfg.KEKFile, "kek_file"
	}
	if d := os.Getenv("CREDENTIALS_DIRECTORY"); d != "" {
		if p := filepath.Join(d, "kek"); exists(p) {
			return p, "systemd credential"
		}
	}
	if simulate {
		return simulateKEKPath(cfg.DataDir), "beside the data directory"
	}
	return DefaultKEKFile, "default"
}

// simulateKEKPath is the KEK `serve --simulate` keeps beside its data
// directory (never inside it: a copy of the directory must not carry it).
func simulateKEKPath(dataDir string) string {
	return filepath.Clean(dataDir) + ".kek"
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// loadKEKs loads the daemon's KEK, and the next one when a rotation
// (`sterad keys rotate`) is unfinished. With --simulate a missing KEK is
// created, so that trying sterad out needs nothing.
func (m *Main) loadKEKs() ([]*offline.KEK, error) {
	path, source := kekPath(m.Config, m.Simulate)
	if source == "systemd credential" {
		return loadCredentialKEK(path) // credential.go
	}
	if m.Simulate && m.Config.KEKFile == "" && !exists(path) {
		kek, err := offline.CreateKEKFile(path, m.Config.DataDir)
		if err != nil {
			return nil, fmt.Errorf("key-encryption key: %w", err)
		}
		m.Logger.Info("created a key-encryption key for the simulation", "file", path, "kek", kek.ID())
	}
	return loadKEKsAt(path, m.Config.DataDir)
}

// loadKEKsAt loads the KEK at path and, if it exists, path.next.
func loadKEKsAt(path, dataDir string) ([]*offline.KEK, error) {
	kek, err := offline.LoadKEKFile(path, dataDir)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	keks := []*offline.KEK{kek}
	if next := path + ".next"; exists(next) {
		k, err := offline.LoadKEKFile(next, dataDir)
		if err != nil {
			return nil, fmt.Errorf("key-encryption key (unfinished rotation): %w", err)
		}
		keks = append(keks, k)
	}
	return keks, nil
}

// storeRefusal is the one line the daemon exits with when the store
// refuses to open.
func storeRefusal(err error) error {
	return fmt.Errorf("open store: %w", err)
}

// RotateKEK re-wraps the store's keys under the key-encryption key in
// kekFile, while the daemon runs.
func (a storeAdmin) RotateKEK(ctx context.Context, kekFile string) (sterad.KEKRotation, error) {
	if kekFile == "" || !filepath.IsAbs(kekFile) {
		return sterad.KEKRotation{}, sterad.Errorf(sterad.EInvalid, "bad_request", "give {\"kek_file\": \"/absolute/path\"} of the new key-encryption key")
	}
	next, err := offline.LoadKEKFile(kekFile, a.m.Config.DataDir)
	if err != nil {
		return sterad.KEKRotation{}, sterad.Errorf(sterad.EInvalid, "bad_kek", "%s", err)
	}
	old := a.m.DB.KEKID()
	n, err := a.m.DB.RotateKEK(ctx, next)
	if err != nil {
		a.m.Logger.Error("rotate key-encryption key", "err", err)
		return sterad.KEKRotation{}, sterad.Errorf(sterad.EInternal, "rotate_failed", "%s", err)
	}
	return sterad.KEKRotation{OldKEK: old, KEK: next.ID(), CardKeys: n}, nil
}

func newKeysCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "The key-encryption key that wraps the store's keys: create, rotate",
		Long: `The store's card keys and MAC key are wrapped under a key-encryption key
(KEK) kept outside the data directory, so that a copy of the data directory
alone opens nothing. sterad finds it at kek_file (env STERAD_KEK_FILE), else
the systemd credential $CREDENTIALS_DIRECTORY/kek, else /etc/sterad/kek.`,
	}
	var initPath string
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create a new key-encryption key file (32 random bytes, mode 0400)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			path := initPath
			if path == "" {
				path, _ = kekPath(cfg, false)
			}
			kek, err := offline.CreateKEKFile(path, cfg.DataDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created key-encryption key %s in %s (mode 0400)\n"+
				"Keep a copy of it apart from the backups of the data directory: without it no backup can be restored.\n", kek.ID(), path)
			return nil
		},
	}
	initCmd.Flags().StringVar(&initPath, "kek-file", "", "where to create it (default: kek_file, STERAD_KEK_FILE or /etc/sterad/kek)")

	var rotPath, newPath string
	rotCmd := &cobra.Command{
		Use:   "rotate",
		Short: "Re-wrap the store's keys under a new key-encryption key, while the daemon runs",
		Long: `Re-wrap every key of the store under a new key-encryption key, without
stopping the daemon:

  1. a new KEK is created at KEK_FILE.next (kept if a rotation was cut short);
  2. the daemon re-wraps its key files under it (POST /v1/keys/rotate): each
     file is written anew, fsynced and renamed over the old one, and until
     then the old KEK stays in use. A daemon restarted in between finds
     both KEK_FILE and KEK_FILE.next and opens the store with either;
  3. the old KEK is kept as KEK_FILE.old-ID (backups taken before now need
     it: delete it when they expire), and KEK_FILE.next becomes KEK_FILE.

With --new-kek-file (for a KEK the daemon gets as a systemd credential),
steps 1 and 3 are yours: create the file first, and point the credential
at it before the daemon next restarts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.config()
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			path := cliKEKPath(cfg, rotPath)
			out := cmd.OutOrStdout()
			target := newPath
			if target == "" {
				target = path + ".next"
				if !exists(target) {
					if _, err := offline.CreateKEKFile(target, cfg.DataDir); err != nil {
						return fmt.Errorf("create the new key-encryption key: %w", err)
					}
				}
			}
			abs, err := filepath.Abs(target)
			if err != nil {
				return err
			}
			var ans sterad.KEKRotation
			if _, err := c.Do(cmd.Context(), http.MethodPost, "/v1/keys/rotate", nil, api.RotateRequest{KEKFile: abs}, &ans); err != nil {
				return fmt.Errorf("rotate: %w", err)
			}
			fmt.Fprintf(out, "re-wrapped %d card keys and the MAC key: key-encryption key %s → %s\n", ans.CardKeys, ans.OldKEK, ans.KEK)
			if newPath != "" {
				fmt.Fprintf(out, "Point kek_file (or the systemd credential) at %s before the daemon next restarts.\n", newPath)
				return nil
			}
			if ans.OldKEK != ans.KEK && exists(path) {
				old := fmt.Sprintf("%s.old-%s", path, ans.OldKEK)
				if err := os.Link(path, old); err != nil && !errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("keep the old key-encryption key: %w (the store is under %s; move it to %s yourself)", err, target, path)
				}
				fmt.Fprintf(out, "the old key-encryption key is kept in %s: backups taken before now need it; delete it when they expire\n", old)
			}
			if err := os.Rename(target, path); err != nil {
				return fmt.Errorf("install the new key-encryption key: %w (the store is under %s; move it to %s yourself)", err, target, path)
			}
			fmt.Fprintf(out, "%s now holds key-encryption key %s\n", path, ans.KEK)
			return nil
		},
	}
	rotCmd.Flags().StringVar(&rotPath, "kek-file", "", "the daemon's KEK file (default: kek_file, STERAD_KEK_FILE or /etc/sterad/kek)")
	rotCmd.Flags().StringVar(&newPath, "new-kek-file", "", "an existing new KEK file to rotate to (nothing is renamed)")
	cmd.AddCommand(initCmd, rotCmd)
	return cmd
}
