package main

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unitSetting returns the value of key= in the packaged systemd unit.
func unitSetting(t *testing.T, key string) string {
	t.Helper()
	f, err := os.Open("../../packaging/sterad.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+"="); ok {
			return v
		}
	}
	t.Fatalf("the unit has no %s=", key)
	return ""
}

// TestPackagedConfig: the conffile the Debian package installs is a valid
// configuration as shipped, leaves the key-encryption key to the systemd
// credential, and the unit waits longer for a stop than the daemon's grace.
func TestPackagedConfig(t *testing.T) {
	cfg, err := LoadConfig("../../packaging/sterad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("the packaged /etc/sterad/sterad.yaml does not validate: %v", err)
	}
	if cfg.KEKFile != "" {
		t.Errorf("the packaged config sets kek_file %q: the daemon (user sterad) would read root's file instead of the credential", cfg.KEKFile)
	}
	if cfg.DataDir != "/var/lib/sterad" {
		t.Errorf("data_dir = %q, want the unit's StateDirectory /var/lib/sterad", cfg.DataDir)
	}
	if got := unitSetting(t, "ExecStart"); got != "/usr/bin/sterad serve --config /etc/sterad/sterad.yaml" {
		t.Errorf("ExecStart=%s", got)
	}
	stop, err := time.ParseDuration(unitSetting(t, "TimeoutStopSec"))
	if err != nil {
		t.Fatal(err)
	}
	if grace := (&Main{Config: cfg}).stopGrace(); stop <= grace+10*time.Second {
		t.Errorf("TimeoutStopSec=%v is not comfortably longer than the stop's grace %v: payments in flight would be killed", stop, grace)
	}
}

// setCredentialACL gives uid read access to path with a POSIX ACL, as
// systemd does to the files of $CREDENTIALS_DIRECTORY (write_credential:
// mode 0400, then an ACL entry for the service's user): the mode's group
// bits then show the ACL mask, r--.
func setCredentialACL(t *testing.T, path string, uid uint32) {
	t.Helper()
	const (
		userObj, user, groupObj, mask, other = 0x01, 0x02, 0x04, 0x10, 0x20
		undefined                            = 0xffffffff
	)
	acl := binary.LittleEndian.AppendUint32(nil, 2) // POSIX_ACL_XATTR_VERSION
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{userObj, 4, undefined}, {user, 4, uid}, {groupObj, 0, undefined}, {mask, 4, undefined}, {other, 0, undefined}} {
		acl = binary.LittleEndian.AppendUint16(acl, e.tag)
		acl = binary.LittleEndian.AppendUint16(acl, e.perm)
		acl = binary.LittleEndian.AppendUint32(acl, e.id)
	}
	if err := syscall.Setxattr(path, "system.posix_acl_access", acl, 0); err != nil {
		if errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EPERM) {
			t.Skipf("cannot set a POSIX ACL here (%v): systemd's credential files cannot be imitated", err)
		}
		t.Fatal(err)
	}
}

// TestKEKFromSystemdCredential: the daemon under the packaged unit gets
// its key-encryption key as $CREDENTIALS_DIRECTORY/kek, a file systemd
// makes 0400 and readable by the service's user through an ACL, so that
// its mode reads 0440. The daemon opens it (and still refuses a credential
// readable by others).
func TestKEKFromSystemdCredential(t *testing.T) {
	creds := t.TempDir()
	kek := filepath.Join(creds, "kek")
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(kek, key, 0o400); err != nil {
		t.Fatal(err)
	}
	setCredentialACL(t, kek, 65534)
	fi, err := os.Stat(kek)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o440 {
		t.Skipf("the ACL left mode %04o, not systemd's 0440", fi.Mode().Perm())
	}
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	m := &Main{Config: DefaultConfig()}
	m.Config.DataDir = filepath.Join(t.TempDir(), "data")
	if _, err := m.loadKEKs(); err != nil {
		t.Fatalf("the daemon refuses the key-encryption key systemd passes it: %v", err)
	}

	if err := os.Chmod(kek, 0o444); err != nil {
		t.Fatal(err)
	}
	if _, err := m.loadKEKs(); err == nil {
		t.Errorf("a credential readable by others (mode 0444) was accepted")
	}
}
