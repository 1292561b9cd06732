package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/offline"
)

// storeOptions are the options to open, after the daemon stopped, the
// store a `serve --simulate` daemon kept in dir: with the KEK it created
// beside dir.
func storeOptions(t *testing.T, dir string) offline.Options {
	t.Helper()
	keks, err := loadKEKsAt(simulateKEKPath(dir), dir)
	if err != nil {
		t.Fatal(err)
	}
	o := offline.DefaultOptions()
	o.KEKs = keks
	return o
}

// run runs a sterad command line in-process (with the store commands, as
// main wires them) and returns its output.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// `serve --simulate` needs nothing: it creates its own KEK beside its
// data directory, 0400; the store cannot be opened without it.
func TestSimulateCreatesItsKEKBesideTheDataDir(t *testing.T) {
	d := startDaemon(t, clearMode)
	dir := d.m.Config.DataDir
	d.post(api.TransactionRequest{Op: "cardcheck", Card: keyed("4111111111111111"), Reference: "RSV-KEK", Stay: stay()})
	d.m.Close()
	kek := dir + ".kek"
	fi, err := os.Stat(kek)
	if err != nil || fi.Mode().Perm() != 0o400 || fi.Size() != 32 {
		t.Fatalf("KEK beside the data directory: %v %v", err, fi)
	}
	if _, err := offline.Open(dir, offline.DefaultOptions()); !errors.Is(err, offline.ErrNoKEK) {
		t.Errorf("Open without the KEK = %v, want ErrNoKEK", err)
	}
	db, err := offline.Open(dir, storeOptions(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.OpenCard(context.Background(), sterad.VaultOwner("RSV-KEK")); err != nil {
		t.Errorf("the kept card does not open with the KEK: %v", err)
	}
}

// A damaged store, a missing or wrong KEK: the daemon does not start, and
// says why in one line (issue 11, findings 3 and 4).
func TestDaemonRefusesDamagedStore(t *testing.T) {
	// One store, made by the daemon, copied for each case.
	d := startDaemon(t, clearMode)
	src := d.m.Config.DataDir
	d.post(api.TransactionRequest{Op: "sale", Amount: "1200", Card: keyed("4111111111111111")})
	d.m.Close()
	cases := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		says   string
	}{
		{"database deleted", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "sterad.db")) }, "sterad.db: the database of store"},
		{"card keys deleted", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "keys", "dek.slots")) }, "dek.slots: the card key file is missing"},
		{"database truncated", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "sterad.db")
			b, _ := os.ReadFile(p)
			last := len(bytes.TrimRight(b, "\x00")) // within the last page in use
			os.Truncate(p, int64((last-1)/4096*4096))
		}, "sterad.db: the database is truncated"},
		{"database overwritten", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "sterad.db")
			b, _ := os.ReadFile(p)
			for i := 8192; i < len(b); i++ {
				b[i] = byte(i)
			}
			os.WriteFile(p, b, 0o600)
		}, "sterad.db: the database is corrupt"},
		{"another KEK", func(t *testing.T, dir string) {
			os.Remove(dir + ".kek")
			if _, err := offline.CreateKEKFile(dir+".kek", dir); err != nil {
				t.Fatal(err)
			}
		}, "wrapped under key-encryption key"},
		{"KEK readable by others", func(t *testing.T, dir string) { os.Chmod(dir+".kek", 0o644) }, "chmod 0400"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			copyTree(t, src, dir)
			copyTree(t, src+".kek", dir+".kek")
			c.break_(t, dir)
			out, err := run(t, "serve", "--simulate", "--data", dir, "--listen", "127.0.0.1:0", "--acquirer", "127.0.0.1:0")
			if err == nil {
				t.Fatalf("serve started on a damaged store: %s", out)
			}
			if msg := err.Error(); !strings.Contains(msg, c.says) || strings.Contains(msg, "\n") || strings.Contains(msg, "goroutine") {
				t.Errorf("serve = %q, want one line saying %q", msg, c.says)
			}
		})
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		switch {
		case e.IsDir():
			return os.MkdirAll(dst, 0o700)
		case e.Type()&fs.ModeSymlink != 0:
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestKeysInit(t *testing.T) {
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	kek := filepath.Join(tmp, "etc", "kek")
	out, err := run(t, "--data", data, "keys", "init", "--kek-file", kek)
	if err != nil || !strings.Contains(out, "created key-encryption key") {
		t.Fatalf("keys init: %v %s", err, out)
	}
	if fi, err := os.Stat(kek); err != nil || fi.Mode().Perm() != 0o400 || fi.Size() != 32 {
		t.Fatalf("the KEK file: %v %v", err, fi)
	}
	if _, err := run(t, "--data", data, "keys", "init", "--kek-file", kek); err == nil || !strings.Contains(err.Error(), "never overwritten") {
		t.Errorf("keys init over a KEK = %v", err)
	}
	if _, err := run(t, "--data", data, "keys", "init", "--kek-file", filepath.Join(data, "kek")); err == nil || !strings.Contains(err.Error(), "inside the data directory") {
		t.Errorf("keys init inside the data directory = %v", err)
	}
	// STERAD_KEK_FILE names it for the daemon.
	t.Setenv("STERAD_KEK_FILE", kek)
	cfg := DefaultConfig()
	cfg.ApplyEnv()
	if p, src := kekPath(cfg, false); p != kek || src != "kek_file" {
		t.Errorf("kekPath = %s (%s), want %s", p, src, kek)
	}
	// A systemd credential is used when nothing names a KEK.
	t.Setenv("STERAD_KEK_FILE", "")
	t.Setenv("CREDENTIALS_DIRECTORY", filepath.Dir(kek))
	cfg = DefaultConfig()
	cfg.ApplyEnv()
	if p, src := kekPath(cfg, false); p != kek || src != "systemd credential" {
		t.Errorf("kekPath = %s (%s), want the credential %s", p, src, kek)
	}
}

// sterad backup takes a consistent copy of the running daemon's store
// while transactions go on; sterad restore brings it back in another
// directory, with the KEK only, never over a store.
func TestBackupAndRestoreCommands(t *testing.T) {
	d := startDaemon(t, clearMode)
	dir := d.m.Config.DataDir
	ctx := context.Background()
	tmp := t.TempDir()
	idFile := filepath.Join(tmp, "backup.key")
	out, err := run(t, "backup", "keygen", "--out", idFile)
	if err != nil {
		t.Fatal(err)
	}
	_, recipient, _ := strings.Cut(out, "recipient: ")
	recipient = strings.TrimSpace(recipient)

	var acked []string
	for i := range 5 {
		tx := d.post(api.TransactionRequest{Op: "sale", Amount: "1000", Card: keyed("4111111111111111")})
		acked = append(acked, tx.ID)
		d.post(api.TransactionRequest{Op: "cardcheck", Card: keyed("5555555555554444"), Reference: fmt.Sprintf("RSV-B%d", i), Stay: stay()})
	}
	// Load during the backup.
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			d.c.CreateTransaction(ctx, api.TransactionRequest{Op: "sale", Amount: "500", Card: keyed("4111111111111111")}, api.CreateOptions{})
		}
	}()
	backup := filepath.Join(tmp, "store.age")
	out, err = run(t, "--api", d.m.APIAddr, "--token", d.m.Token, "backup", "--to", backup, "--recipient", recipient)
	close(stop)
	<-done
	if err != nil {
		t.Fatalf("backup: %v %s", err, out)
	}
	raw, _ := os.ReadFile(backup)
	if !bytes.HasPrefix(raw, []byte("age-encryption.org/v1")) || bytes.Contains(raw, []byte("4111111111111111")) || bytes.Contains(raw, []byte(acked[0])) {
		t.Fatal("the backup is not an age file, or shows what it holds")
	}

	kek := dir + ".kek"
	dest := filepath.Join(tmp, "restored")
	otherKEK := filepath.Join(tmp, "other.kek")
	if _, err := offline.CreateKEKFile(otherKEK, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "restore", "--from", backup, "--identity", idFile, "--data", dest, "--kek-file", otherKEK); err == nil || !strings.Contains(err.Error(), "key-encryption key") {
		t.Fatalf("restore with another KEK = %v", err)
	}
	out, err = run(t, "restore", "--from", backup, "--identity", idFile, "--data", dest, "--kek-file", kek)
	if err != nil || !strings.Contains(out, "restored store") {
		t.Fatalf("restore: %v %s", err, out)
	}
	if _, err := run(t, "restore", "--from", backup, "--identity", idFile, "--data", dest, "--kek-file", kek); err == nil || !strings.Contains(err.Error(), "refuses to overwrite") {
		t.Errorf("restore over a store = %v", err)
	}
	out, err = run(t, "store", "check", "--data", dest, "--kek-file", kek)
	if err != nil || !strings.Contains(out, "ok: bbolt's consistency check found nothing wrong") {
		t.Errorf("store check of the restored store: %v %s", err, out)
	}
	keks, _ := loadKEKsAt(kek, dest)
	o := offline.DefaultOptions()
	o.KEKs = keks
	db, err := offline.Open(dest, o)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, id := range acked {
		if _, err := db.Transaction(ctx, id); err != nil {
			t.Errorf("transaction %s is not in the backup: %v", id, err)
		}
	}
	for i := range 5 {
		if _, err := db.OpenCard(ctx, sterad.VaultOwner(fmt.Sprintf("RSV-B%d", i))); err != nil {
			t.Errorf("vault card %d: %v", i, err)
		}
	}
	if id, live := db.Identity(), d.m.DB.Identity(); id != live {
		t.Errorf("restored identity %+v, want %+v", id, live)
	}
}

// sterad keys rotate re-wraps the running daemon's keys: the daemon goes
// on, the new KEK replaces the old file, the old one is kept for older
// backups, and the store opens with the new one only.
func TestKeysRotateWhileRunning(t *testing.T) {
	d := startDaemon(t, clearMode)
	dir := d.m.Config.DataDir
	kek := dir + ".kek"
	d.post(api.TransactionRequest{Op: "cardcheck", Card: keyed("4111111111111111"), Reference: "RSV-R1", Stay: stay()})
	old := d.m.DB.KEKID()
	out, err := run(t, "--api", d.m.APIAddr, "--token", d.m.Token, "--data", dir, "keys", "rotate", "--kek-file", kek)
	if err != nil {
		t.Fatalf("rotate: %v %s", err, out)
	}
	if d.m.DB.KEKID() == old || !strings.Contains(out, "re-wrapped 1 card keys") {
		t.Errorf("rotate: %s", out)
	}
	if _, err := os.Stat(kek + ".old-" + old); err != nil {
		t.Errorf("the old KEK is not kept: %v", err)
	}
	if _, err := os.Stat(kek + ".next"); err == nil {
		t.Error("the .next file is left behind")
	}
	// The daemon goes on sealing and opening cards.
	d.post(api.TransactionRequest{Op: "cardcheck", Card: keyed("5555555555554444"), Reference: "RSV-R2", Stay: stay()})
	d.m.Close()
	db, err := offline.Open(dir, storeOptions(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, ref := range []string{"RSV-R1", "RSV-R2"} {
		if _, err := db.OpenCard(context.Background(), sterad.VaultOwner(ref)); err != nil {
			t.Errorf("%s after rotation: %v", ref, err)
		}
	}
}

// sterad store check: refuses while the daemon runs, reports a damaged
// card key and exits 1.
func TestStoreCheckCommand(t *testing.T) {
	d := startDaemon(t, clearMode)
	dir := d.m.Config.DataDir
	d.post(api.TransactionRequest{Op: "cardcheck", Card: keyed("4111111111111111"), Reference: "RSV-C1", Stay: stay()})
	if _, err := run(t, "store", "check", "--data", dir); err == nil || !strings.Contains(err.Error(), "another process has the store open") {
		t.Errorf("store check while the daemon runs = %v", err)
	}
	d.m.Close()
	out, err := run(t, "store", "check", "--data", dir, "--kek-file", dir+".kek")
	if err != nil || !strings.Contains(out, "1 kept cards") {
		t.Fatalf("store check: %v %s", err, out)
	}
	p := filepath.Join(dir, "keys", "dek.slots")
	b, _ := os.ReadFile(p)
	// The last byte that is not zero: the card's key (the file holds
	// zeroed free slots after it).
	i := len(b) - 1
	for i > 0 && b[i] == 0 {
		i--
	}
	b[i] ^= 0xff
	os.WriteFile(p, b, 0o600)
	out, err = run(t, "store", "check", "--data", dir, "--kek-file", dir+".kek")
	var ex *exitError
	if !errors.As(err, &ex) || ex.code != 1 || !strings.Contains(out, "LOST CARD KEY: vault:RSV-C1") {
		t.Errorf("store check of a damaged key: %v %s", err, out)
	}
}

// kek_file in the configuration: relative to the configuration file, and
// STERAD_KEK_FILE overrides it.
func TestKEKFileConfig(t *testing.T) {
	p := writeFile(t, "kek_file: keys/kek\n")
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(filepath.Dir(p), "keys", "kek"); cfg.KEKFile != want {
		t.Errorf("kek_file = %s, want %s", cfg.KEKFile, want)
	}
	t.Setenv("STERAD_KEK_FILE", "/run/kek")
	cfg.ApplyEnv()
	if path, src := kekPath(cfg, true); path != "/run/kek" || src != "kek_file" {
		t.Errorf("kekPath = %s (%s), want /run/kek", path, src)
	}
}
