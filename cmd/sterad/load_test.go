package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sterad/sterad/api"
)

// The API load test: hostile clients on loopback against an in-process
// daemon, while an authenticated client makes sales. Off by default:
//
//	go test -count=1 -run TestAPILoad -v ./cmd/sterad/ -sterad.load
//
// Each flood runs in child processes (this test binary again, as
// TestLoadFlooder) so that /proc/self/fd and RSS count the daemon alone;
// every child stops by itself after its phase.
var loadTest = flag.Bool("sterad.load", false, "run the API load test (TestAPILoad)")

const floodPhase = 8 * time.Second

func TestAPILoad(t *testing.T) {
	if !*loadTest {
		t.Skip("the API load test runs with -sterad.load")
	}
	d := startDaemon(t, clearMode)
	addr := d.m.APIAddr

	report := func(phase string) {
		lat := saleLatencies(t, d, 5)
		st := d.m.connGuard.Stats()
		t.Logf("%-34s sale p50 %6s max %6s | fds %5d | RSS %4d MB | api conns %3d (unauth %2d) evicted %6d refused %d | log %d KB",
			phase, lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond),
			fdCount(), rssMB(), st.Open, st.Unauthenticated, st.Evicted, st.Refused, len(d.log.String())>>10)
	}
	settle := func(phase string) {
		d.waitFor("flood connections gone", func() bool { return d.m.connGuard.Stats().Open <= 2 })
		report(phase)
	}
	report("baseline")
	for _, ph := range []struct {
		name  string
		mode  string
		procs int
		conns int
	}{
		{"slow-body flood (2,000 conns)", "slowbody", 1, 2000},
		{"slow-header flood (2,000 conns)", "slowheader", 1, 2000},
		{"idle flood (5,000 conns)", "idle", 1, 5000},
		{"healthz keep-alive flood (2,000)", "healthz", 1, 2000},
		{"20,000 connections", "idle", 2, 10000},
	} {
		stop := startFlooders(t, addr, ph.mode, ph.procs, ph.conns)
		report("during " + ph.name)
		stop()
		settle("after " + ph.name)
	}
}

// saleLatencies makes n keyed sales, each on a new connection, and
// returns their durations, sorted. A sale that fails fails the test.
func saleLatencies(t *testing.T, d *testDaemon, n int) []time.Duration {
	t.Helper()
	var out []time.Duration
	for i := range n {
		c := api.NewClient(d.m.APIAddr, d.m.Token)
		c.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		start := time.Now()
		tx, _, err := c.CreateTransaction(context.Background(), api.TransactionRequest{
			Op: "sale", Amount: api.FlexAmount(strconv.Itoa(1000 + i)), Card: keyed("4111111111111111"), Reference: "LOAD",
		}, api.CreateOptions{})
		if err != nil || tx.Status != "approved" {
			t.Fatalf("sale under load: %v", err)
		}
		out = append(out, time.Since(start))
	}
	slices.Sort(out)
	return out
}

func fdCount() int {
	es, _ := os.ReadDir("/proc/self/fd")
	return len(es)
}

func rssMB() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return kb >> 10
		}
	}
	return -1
}

// startFlooders starts procs children flooding addr with conns
// connections each, waits until they are established, and returns a
// function that stops them.
func startFlooders(t *testing.T, addr, mode string, procs, conns int) func() {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	for i := range procs {
		cmd := exec.Command(exe, "-test.run=^TestLoadFlooder$", "-test.count=1")
		cmd.Env = append(os.Environ(), "STERAD_FLOOD="+strings.Join([]string{addr, mode, strconv.Itoa(conns), strconv.Itoa(i), floodPhase.String()}, ","))
		cmd.Stderr = os.Stderr
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if l := sc.Text(); strings.HasPrefix(l, "flooder ready") {
					ready <- l
				}
			}
			close(ready)
		}()
		select {
		case l, ok := <-ready:
			if !ok {
				t.Fatal("flooder ended before it was ready")
			}
			t.Logf("  %s", l)
		case <-time.After(60 * time.Second):
			t.Fatal("flooder not ready within 60 s")
		}
		cmds = append(cmds, cmd)
	}
	return func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}
}

// TestLoadFlooder is the hostile client of TestAPILoad, run in a child
// process: STERAD_FLOOD=addr,mode,conns,index,duration. It keeps conns
// connections open (reopening those the daemon closes) for duration,
// then exits.
func TestLoadFlooder(t *testing.T) {
	spec := os.Getenv("STERAD_FLOOD")
	if spec == "" {
		t.Skip("child process of TestAPILoad")
	}
	f := strings.Split(spec, ",")
	addr, mode := f[0], f[1]
	n, _ := strconv.Atoi(f[2])
	idx, _ := strconv.Atoi(f[3])
	dur, _ := time.ParseDuration(f[4])
	ctx, cancel := context.WithTimeout(context.Background(), dur+60*time.Second)
	defer cancel()
	var established, reopened atomic.Int64
	var wg sync.WaitGroup
	readyAt := make(chan struct{})
	var once sync.Once
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// An attacking host with four addresses per child:
			// 127.0.<idx+1>.2-5 (four ephemeral port ranges).
			src := net.IPv4(127, 0, byte(idx+1), byte(2+i%4))
			dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}
			first := true
			for ctx.Err() == nil {
				c, err := dialer.DialContext(ctx, "tcp", addr)
				if err != nil {
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond): // back off before redialing
					}
					continue
				}
				if first {
					first = false
					if established.Add(1) == int64(n) {
						once.Do(func() { close(readyAt) })
					}
				} else {
					reopened.Add(1)
				}
				flood(ctx, c, mode)
				c.Close()
			}
		}()
	}
	select {
	case <-readyAt:
	case <-time.After(30 * time.Second):
	}
	fmt.Printf("flooder ready: %s, %d of %d connections established\n", mode, established.Load(), n)
	select {
	case <-time.After(dur):
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
}

// flood plays one hostile connection until the daemon closes it or ctx ends.
func flood(ctx context.Context, c net.Conn, mode string) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	tick := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d): // trickle: the attacker's pace
			return true
		}
	}
	switch mode {
	case "slowbody":
		if _, err := io.WriteString(c, "POST /v1/transactions HTTP/1.1\r\nHost: sterad\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n{"); err != nil {
			return
		}
		for tick(time.Second) {
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	case "slowheader":
		for tick(time.Second) {
			if _, err := c.Write([]byte("X")); err != nil {
				return
			}
		}
	case "healthz":
		r := bufio.NewReader(c)
		for {
			if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: sterad\r\n\r\n"); err != nil {
				return
			}
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if !tick(5 * time.Second) {
				return
			}
		}
	default: // idle: connect and say nothing
		io.Copy(io.Discard, c)
	}
}
