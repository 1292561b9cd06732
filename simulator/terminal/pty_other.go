//go:build !unix

package terminal

import (
	"context"
	"errors"
)

// ListenPTY needs pseudo-terminals: on this platform it fails at once.
func (t *Terminal) ListenPTY(ctx context.Context, link string) error {
	return errors.New("terminal: pseudo-terminals are not supported on this platform")
}
