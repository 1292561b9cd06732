// Command sterad is the payment terminal gateway daemon for hotels, its
// test acquirer and terminal simulator, and the client commands that call
// its HTTP API. Run "sterad --help".
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr) // cliout.go: exit codes, --json errors
	stop()
	os.Exit(code)
}

// exitError ends the process with a code after its message was printed.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }
