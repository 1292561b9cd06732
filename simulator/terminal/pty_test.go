//go:build unix

package terminal_test

import (
	"context"
	"errors"
	"github.com/sterad/sterad/internal/testutil"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sterad/sterad/protocol"
	"github.com/sterad/sterad/simulator/terminal"
)

func needPTY(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	f.Close()
}

// openPort opens the terminal's port the way a gateway opens a serial
// device, and says HELLO. It fails (without t.Fatal) while the port is
// not there or not answering.
func openPort(t *testing.T, link string) (*gateway, protocol.HelloResp, error) {
	t.Helper()
	f, err := os.OpenFile(link, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, protocol.HelloResp{}, err
	}
	g := newGateway(t, f, gwLink)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b, _ := protocol.MarshalPayload(protocol.Hello{Proto: 1, GatewayID: "GW"})
	if err := g.link.Send(ctx, protocol.TypeHello, b); err != nil {
		g.link.Close()
		return nil, protocol.HelloResp{}, err
	}
	for {
		select {
		case f := <-g.frames:
			if f.Type != protocol.TypeHelloResp {
				continue
			}
			var r protocol.HelloResp
			if err := protocol.UnmarshalPayload(f, &r); err != nil {
				return nil, r, err
			}
			return g, r, nil
		case <-ctx.Done():
			g.link.Close()
			return nil, protocol.HelloResp{}, ctx.Err()
		case <-g.link.Done():
			return nil, protocol.HelloResp{}, g.link.Err()
		}
	}
}

func TestListenPTY(t *testing.T) {
	needPTY(t)
	term := newTerminal(t)
	link := filepath.Join(t.TempDir(), "ttyFRONT001")
	if err := os.Symlink("/dev/nonexistent-stale", link); err != nil { // a stale link from a crash
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- term.ListenPTY(ctx, link)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(wait):
			t.Error("ListenPTY did not return")
		}
	})

	testutil.Eventually(t, "the pty symlink", func() bool {
		target, err := os.Readlink(link)
		return err == nil && target != "/dev/nonexistent-stale"
	})
	g, r, err := openPort(t, link)
	if err != nil {
		t.Fatalf("HELLO on the pty: %v", err)
	}
	if r.TerminalID != "FRONT001" || r.BootID != term.BootID() {
		t.Errorf("HELLO_RESP = %+v", r)
	}
	if res := g.sale("P1"); res.Status != "done" {
		t.Errorf("sale on the pty: %+v", res)
	}
	st := term.State()
	if !st.Connected || st.Port == "" {
		t.Errorf("state: connected %v port %q", st.Connected, st.Port)
	}
	oldPort := st.Port

	// The gateway closes and reopens the port: the terminal does not notice.
	g.link.Close()
	g, _, err = openPort(t, link)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}

	// Unplug: the gateway's reads fail, the symlink goes away and comes back.
	mustFault(t, term, terminal.FaultUnplug, 0, 100)
	// Linux hangs the slave up: reads return 0 bytes (EOF), writes EIO.
	if err := linkDone(t, g); err == nil {
		t.Error("the gateway's link ended without error")
	}
	var g2 *gateway
	testutil.Eventually(t, "the port to come back", func() bool {
		g2, r, err = openPort(t, link)
		return err == nil
	})
	if r.BootID != term.BootID() {
		t.Error("boot_id changed on unplug")
	}
	if res := g2.sale("P2"); res.Status != "done" {
		t.Errorf("sale after replug: %+v", res)
	}
	t.Logf("port %s, then %s", oldPort, term.State().Port)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ListenPTY = %v", err)
		}
	case <-time.After(wait):
		t.Fatal("ListenPTY did not return")
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("symlink left behind: %v", err)
	}
}

func TestListenPTYReboot(t *testing.T) {
	needPTY(t)
	term := newTerminal(t)
	link := filepath.Join(t.TempDir(), "tty")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- term.ListenPTY(ctx, link) }()
	defer func() { cancel(); <-done }()

	var g *gateway
	var r protocol.HelloResp
	var err error
	testutil.Eventually(t, "the port", func() bool { g, r, err = openPort(t, link); return err == nil })
	boot := r.BootID
	mustFault(t, term, terminal.FaultReboot, 0, 50)
	linkDone(t, g)
	testutil.Eventually(t, "the port after the reboot", func() bool { _, r, err = openPort(t, link); return err == nil })
	if r.BootID == boot {
		t.Error("same boot_id after a reboot")
	}
}

func TestListenPTYRefusesToReplaceAFile(t *testing.T) {
	needPTY(t)
	term := newTerminal(t)
	path := filepath.Join(t.TempDir(), "ttyS0")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := term.ListenPTY(context.Background(), path); err == nil {
		t.Fatal("ListenPTY replaced a regular file")
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Error("file changed")
	}
}
