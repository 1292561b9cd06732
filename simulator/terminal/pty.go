//go:build unix

package terminal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/term"
)

// ListenPTY serves the terminal on a new pseudo-terminal whose slave is
// symlinked at link (a stale symlink there is replaced atomically; any
// other file is an error). The slave is in raw mode and the terminal keeps
// its own slave fd open, so the gateway may close and reopen the port at
// will. On the unplug and reboot faults the master is closed (Linux hangs
// the gateway's slave fd up: reads return end of file, writes EIO, and
// opening the old path fails), the symlink is removed, and
// after the fault's ms a new pty is symlinked at the same path. ListenPTY
// runs until ctx ends, then removes the symlink and returns nil.
func (t *Terminal) ListenPTY(ctx context.Context, link string) error {
	for {
		master, slave, err := openPTY()
		if err != nil {
			return fmt.Errorf("terminal: open pty: %w", err)
		}
		if err := symlink(slave.Name(), link); err != nil {
			master.Close()
			slave.Close()
			return fmt.Errorf("terminal: %w", err)
		}
		t.mu.Lock()
		t.port = slave.Name()
		t.mu.Unlock()
		t.log.Info("pty ready", "link", link, "port", slave.Name())

		err = t.Serve(ctx, master) // closes master
		slave.Close()
		removeLink(link, slave.Name())
		t.mu.Lock()
		t.port = ""
		t.mu.Unlock()

		if ctx.Err() != nil {
			return nil
		}
		var u *UnplugError
		if !errors.As(err, &u) {
			return fmt.Errorf("terminal: pty: %w", err)
		}
		timer := time.NewTimer(u.Down)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil
		}
	}
}

// openPTY opens a pty pair with the slave in raw mode. The master is made
// non-blocking so that closing it interrupts a pending Read.
func openPTY() (master, slave *os.File, err error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, nil, err
	}
	if _, err := term.MakeRaw(int(s.Fd())); err != nil {
		m.Close()
		s.Close()
		return nil, nil, fmt.Errorf("raw mode: %w", err)
	}
	// creack/pty leaves the master in blocking mode; a blocking os.File is
	// not in the poller and Close would not interrupt Read.
	fd, err := syscall.Dup(int(m.Fd()))
	m.Close()
	if err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("dup pty master: %w", err)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		s.Close()
		return nil, nil, fmt.Errorf("pty master: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), s, nil
}

// symlink points link at target atomically: a temporary symlink renamed
// over link. It refuses to replace anything but a symlink.
func symlink(target, link string) error {
	if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return fmt.Errorf("%s exists and is not a symlink", link)
	}
	tmp := filepath.Join(filepath.Dir(link), fmt.Sprintf(".%s.%d.tmp", filepath.Base(link), os.Getpid()))
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("symlink pty: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("symlink pty: %w", err)
	}
	return nil
}

// removeLink removes link if it still points at target.
func removeLink(link, target string) {
	if got, err := os.Readlink(link); err == nil && got == target {
		os.Remove(link)
	}
}
