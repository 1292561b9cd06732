package offline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
)

// Backups leave the machine encrypted with age (filippo.io/age) to the
// operator's recipients: the archive holds the transaction journal in
// clear (masked card numbers, amounts, references) and the card keys
// wrapped under the KEK. Restoring needs the age identity and the KEK.

// ParseBackupRecipients checks age recipients (age1…, one per entry;
// blank lines and # comments are skipped).
func ParseBackupRecipients(recipients []string) ([]age.Recipient, error) {
	rs, err := age.ParseRecipients(strings.NewReader(strings.Join(recipients, "\n")))
	if err != nil {
		return nil, fmt.Errorf("age recipients: %w", err)
	}
	return rs, nil
}

// BackupEncrypted writes Backup's archive to w, encrypted to recipients.
// When it fails after the first bytes, the stream lacks age's final
// chunk, and decrypting it fails: a cut backup is never taken for whole.
func (db *DB) BackupEncrypted(ctx context.Context, w io.Writer, recipients []string) error {
	rs, err := ParseBackupRecipients(recipients)
	if err != nil {
		return err
	}
	enc, err := age.Encrypt(w, rs...)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := db.Backup(ctx, enc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// RestoreEncrypted decrypts a backup with an age identity file's content
// and restores it into dir (see Restore).
func RestoreEncrypted(r io.Reader, identity []byte, dir string, opts Options) (Identity, error) {
	ids, err := age.ParseIdentities(bytes.NewReader(identity))
	if err != nil {
		return Identity{}, fmt.Errorf("age identity: %w", err)
	}
	dec, err := age.Decrypt(r, ids...)
	if err != nil {
		return Identity{}, fmt.Errorf("decrypt the backup: %w", err)
	}
	return Restore(dec, dir, opts)
}

// NewBackupIdentity returns a new age identity (AGE-SECRET-KEY-1…) and
// its recipient (age1…).
func NewBackupIdentity() (identity, recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", "", err
	}
	return id.String(), id.Recipient().String(), nil
}
