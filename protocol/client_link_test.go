package protocol_test

import (
	"cmp"
	"context"
	"errors"
	"github.com/sterad/sterad/internal/testutil"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
)

// onlySignOns answers sign-ons and stays silent for everything else: a host
// that accepts requests but never answers them.
func onlySignOns(m *sterad.HostMessage) bool { return !isNetwork(m, sterad.NetSignOn) }

// sale returns a chip sale from the physical terminal with the given STAN.
func sale(stan sterad.STAN) *sterad.HostMessage {
	m := goldenMessage("0200-sale-chip")
	m.STAN, m.Transmitted = stan, time.Now().UTC()
	return m
}

// TestClientFirstAnswerCounts: when the host answers one request twice, the
// first answer is the response and the second a late response, every time.
func TestClientFirstAnswerCounts(t *testing.T) {
	noLeaks(t)
	tests := []struct{ first, second string }{{"00", "05"}, {"05", "00"}}
	for _, tt := range tests {
		t.Run(tt.first+" then "+tt.second, func(t *testing.T) {
			h := startHost(t, "127.0.0.1:0")
			c := startClient(t, h.addr(), nil)
			hc := h.nextConn(t)
			hc.next(t) // sign-on
			waitOnline(t, c)
			h.setAnswer(func(req *sterad.HostMessage) *sterad.HostMessage {
				a, b := approve(req), approve(req)
				a.ResponseCode, b.ResponseCode = tt.first, tt.second
				hc.sendAll(a, b) // both in one write
				return nil
			})
			const n = 100
			firsts := 0
			for i := range n {
				stan := sterad.STAN(i + 1)
				resp := exchange(t, c, sale(stan))
				hc.next(t)
				if resp.STAN != stan {
					t.Fatalf("response STAN %v, want %v", resp.STAN, stan)
				}
				if resp.ResponseCode == tt.first {
					firsts++
				}
				testutil.Eventually(t, "the second answer to be counted late", func() bool { return c.Stats().LateResponses == int64(i+1) })
			}
			if firsts != n {
				t.Errorf("the first answer (%s) counted %d times of %d; the second (%s) the other times", tt.first, firsts, n, tt.second)
			}
			if s := c.Stats(); s.Responses != n+1 || s.LateResponses != n || s.Timeouts != 0 {
				t.Errorf("Stats = %+v, want %d responses (with the sign-on's) and %d late", s, n+1, n)
			}
		})
	}
}

// TestClientSilentHostKillsLink: a host that accepts requests but never
// answers is noticed, by consecutive timeouts or by an unanswered echo even
// while requests keep going out; the link goes offline, is closed and
// signed on again.
func TestClientSilentHostKillsLink(t *testing.T) {
	noLeaks(t)
	t.Run("consecutive timeouts", func(t *testing.T) {
		h := startHost(t, "127.0.0.1:0")
		h.setAnswer(except(onlySignOns))
		c := startClient(t, h.addr(), func(o *protocol.ClientOptions) {
			o.Timeout, o.MaxTimeouts = 50*time.Millisecond, 3
			o.BackoffMin, o.BackoffMax = 300*time.Millisecond, 300*time.Millisecond
		})
		statuses := c.Subscribe()
		hc := h.nextConn(t)
		hc.next(t) // sign-on
		waitOnline(t, c)
		for i := range 3 {
			if st := c.Status(); !st.Online {
				t.Fatalf("Status after %d timeouts = %+v, want online", i, st)
			}
			if _, err := c.Exchange(context.Background(), sale(sterad.STAN(i+1))); !errors.Is(err, sterad.ErrNoResponse) {
				t.Fatalf("Exchange %d: %v, want ErrNoResponse", i+1, err)
			}
			hc.next(t)
		}
		// The third timeout killed the link before Exchange returned: the
		// next sale is not sent on it.
		if _, err := c.Exchange(context.Background(), sale(4)); !errors.Is(err, sterad.ErrHostUnavailable) {
			t.Errorf("Exchange after 3 timeouts: %v, want ErrHostUnavailable", err)
		}
		st := waitStatus(t, statuses, "offline", func(st sterad.LinkStatus) bool { return st.State == protocol.HostOffline })
		if !strings.Contains(st.LastError, "3 requests in a row unanswered") {
			t.Errorf("Status.LastError = %q, want the timeouts", st.LastError)
		}
		if _, ok := <-hc.recv; ok {
			t.Error("the dead link sent another message")
		}
		hc2 := h.nextConn(t)
		if m := hc2.next(t); !isNetwork(m, sterad.NetSignOn) {
			t.Fatalf("first message on the new connection %s DE 70 %q, want a sign-on", m.MTI, m.NetworkCode)
		}
		waitStatus(t, statuses, "online again", func(st sterad.LinkStatus) bool { return st.Online })
		if s := c.Stats(); s.SignOns != 2 || s.Reconnects != 1 || s.Timeouts != 3 {
			t.Errorf("Stats = %+v, want 2 sign-ons, 1 reconnect, 3 timeouts", s)
		}
	})
	t.Run("unanswered echo while sales go out", func(t *testing.T) {
		h := startHost(t, "127.0.0.1:0")
		h.setAnswer(except(onlySignOns))
		c := startClient(t, h.addr(), func(o *protocol.ClientOptions) {
			o.EchoInterval, o.EchoTimeout = 100*time.Millisecond, 100*time.Millisecond
			o.MaxTimeouts = 1 << 30 // only the echo may kill the link
		})
		statuses := c.Subscribe()
		hc := h.nextConn(t)
		hc.next(t) // sign-on
		waitOnline(t, c)

		// A sale every 10 ms, each waiting up to Timeout (2 s), until the
		// test has seen the link die.
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for stan := sterad.STAN(1); ; stan++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := c.Exchange(context.Background(), sale(stan))
					// nil: a sale after the reconnection, approved.
					if err != nil && !errors.Is(err, sterad.ErrNoResponse) && !errors.Is(err, sterad.ErrHostUnavailable) {
						t.Errorf("sale on the silent link: %v, want ErrNoResponse or ErrHostUnavailable", err)
					}
				}()
			}
		}()
		stopSales := sync.OnceFunc(func() {
			close(stop)
			wg.Wait()
		})
		defer stopSales()
		echoed := false
		giveUp := time.After(5 * time.Second)
	read:
		for {
			select {
			case m, ok := <-hc.recv:
				if !ok {
					break read // the client closed the connection
				}
				if isNetwork(m, sterad.NetEcho) {
					echoed = true
				}
			case <-giveUp:
				t.Fatalf("the link is still up after 5 s of unanswered sales (echo sent: %v)", echoed)
			}
		}
		h.setAnswer(approve)
		stopSales()
		if !echoed {
			t.Error("no echo was sent while the host sent nothing")
		}
		st := waitStatus(t, statuses, "offline", func(st sterad.LinkStatus) bool { return st.State == protocol.HostOffline })
		if !strings.Contains(st.LastError, "echo") {
			t.Errorf("Status.LastError = %q, want the echo failure", st.LastError)
		}
		hc2 := h.nextConn(t)
		if m := hc2.next(t); !isNetwork(m, sterad.NetSignOn) {
			t.Fatalf("first message on the new connection %s DE 70 %q, want a sign-on", m.MTI, m.NetworkCode)
		}
		waitOnline(t, c)
	})
}

// smallBuffer returns a socket control function that sets the socket's
// option (SO_RCVBUF, SO_SNDBUF) to 4 KiB. Loopback buffers otherwise grow
// to megabytes before a writer blocks.
func smallBuffer(option int) func(_, _ string, rc syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, option, 4096)
		})
		return cmp.Or(err, serr)
	}
}

// TestClientHostStopsReading: when the host stops reading and the client's
// writes block, every Exchange still returns by its own deadline, with
// ErrHostUnavailable when its request was never written.
func TestClientHostStopsReading(t *testing.T) {
	noLeaks(t)
	const (
		n        = 1200
		deadline = 300 * time.Millisecond
	)
	// The bound catches calls blocked on the connection, not slow CPUs:
	// the overshoot measured is CPU time (1200 messages packed at once).
	margin := 2 * time.Second
	if raceEnabled {
		margin = 5 * time.Second
	}
	tests := []struct {
		name string
		edit func(*protocol.ClientOptions)
		ctx  bool // the 300 ms come from the context, not from Timeout
	}{
		// Timeout 300 ms: the timeouts (or the blocked write) kill the link.
		{"timeout", func(o *protocol.ClientOptions) { o.Timeout = deadline }, false},
		// Context deadlines, the link kept (a write may block for a
		// minute): nothing but each Exchange's own deadline makes it
		// return.
		{"context deadline", func(o *protocol.ClientOptions) { o.Timeout, o.MaxTimeouts = time.Minute, 1<<30 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHostWith(t, &net.ListenConfig{Control: smallBuffer(syscall.SO_RCVBUF)}, "127.0.0.1:0", nil)
			h.setAnswer(except(func(m *sterad.HostMessage) bool { return m.MTI != sterad.MTINetwork }))
			c := startClient(t, h.addr(), func(o *protocol.ClientOptions) {
				o.Dialer = &net.Dialer{Control: smallBuffer(syscall.SO_SNDBUF)}
				tt.edit(o)
			})
			hc := h.nextConn(t)
			hc.next(t) // sign-on
			waitOnline(t, c)
			stall := make(chan struct{})
			h.stall.Store(&stall)
			// Take whatever the host reads, on every connection, so that
			// the fake host never blocks on its test.
			go func() {
				for {
					select {
					case hc := <-h.conns:
						go func() {
							for range hc.recv {
							}
						}()
					case <-h.done:
						return
					}
				}
			}()
			h.conns <- hc

			start := make(chan struct{})
			type result struct {
				err  error
				took time.Duration
			}
			results := make(chan result, n)
			for i := range n {
				go func() {
					<-start
					ctx := context.Background()
					if tt.ctx {
						var cancel context.CancelFunc
						ctx, cancel = context.WithTimeout(ctx, deadline)
						defer cancel()
					}
					t0 := time.Now()
					_, err := c.Exchange(ctx, sale(sterad.STAN(i+1)))
					results <- result{err, time.Since(t0)}
				}()
			}
			close(start)
			var maxTook time.Duration
			counts := map[string]int{}
			timeout := time.After(deadline + margin + 5*time.Second)
			for range n {
				var r result
				select {
				case r = <-results:
				case <-timeout:
					t.Fatalf("Exchange calls still blocked %v after their deadline", margin+5*time.Second)
				}
				maxTook = max(maxTook, r.took)
				switch {
				case errors.Is(r.err, sterad.ErrNoResponse):
					counts["no response (maybe sent)"]++
				case errors.Is(r.err, sterad.ErrHostUnavailable):
					counts["unavailable (not sent)"]++
				default:
					t.Errorf("Exchange: %v, want ErrNoResponse or ErrHostUnavailable", r.err)
				}
			}
			t.Logf("%d exchanges, deadline %v: slowest returned after %v (overshoot %v); %v; stats %+v",
				n, deadline, maxTook, maxTook-deadline, counts, c.Stats())
			if maxTook > deadline+margin {
				t.Errorf("slowest Exchange took %v, want at most %v", maxTook, deadline+margin)
			}
			if counts["unavailable (not sent)"] == 0 {
				t.Errorf("every request was written: the host's window never filled (%v)", counts)
			}

			// The host reads again: the link serves (the same one, or a
			// new one after the timeouts killed the first).
			h.setAnswer(approve)
			h.stall.Store(nil)
			close(stall)
			testutil.Eventually(t, "a sale to go through", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, err := c.Exchange(ctx, sale(999999))
				return err == nil
			})
		})
	}
}

// TestClientDrain: Drain refuses new requests (not sent) and lets the one in
// flight get its answer, then signs off and closes; when its context ends
// first, the request still waiting ends with ErrNoResponse.
func TestClientDrain(t *testing.T) {
	noLeaks(t)
	type outcome struct {
		resp *sterad.HostMessage
		err  error
	}
	start := func(t *testing.T) (*fakeHost, *testClient, *hostConn, <-chan sterad.LinkStatus, <-chan outcome, *sterad.HostMessage) {
		t.Helper()
		h := startHost(t, "127.0.0.1:0")
		h.setAnswer(except(func(m *sterad.HostMessage) bool { return m.STAN == 1 }))
		c := startClient(t, h.addr(), nil)
		statuses := c.Subscribe()
		hc := h.nextConn(t)
		hc.next(t) // sign-on
		waitOnline(t, c)
		got := make(chan outcome, 1)
		go func() {
			resp, err := c.Exchange(context.Background(), sale(1))
			got <- outcome{resp, err}
		}()
		return h, c, hc, statuses, got, hc.next(t)
	}
	drain := func(c *testClient, d time.Duration) <-chan error {
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			done <- c.Drain(ctx)
		}()
		return done
	}

	t.Run("in flight answered", func(t *testing.T) {
		_, c, hc, statuses, got, inFlight := start(t)
		drained := drain(c, 5*time.Second)
		waitStatus(t, statuses, "offline while draining", func(st sterad.LinkStatus) bool { return st.State == protocol.HostOffline })
		if _, err := c.Exchange(context.Background(), sale(2)); !errors.Is(err, sterad.ErrHostUnavailable) || errors.Is(err, sterad.ErrNoResponse) {
			t.Errorf("Exchange while draining: %v, want ErrHostUnavailable", err)
		}
		select {
		case err := <-drained:
			t.Fatalf("Drain returned %v with a request in flight", err)
		default:
		}
		hc.send(approve(inFlight))
		if o := <-got; o.err != nil || o.resp.STAN != 1 || o.resp.ResponseCode != "00" {
			t.Errorf("in-flight sale: %v, %v; want its approval", o.resp, o.err)
		}
		if err := <-drained; err != nil {
			t.Errorf("Drain: %v", err)
		}
		// The stream is ordered: the refused sale would come before.
		if m := hc.next(t); !isNetwork(m, sterad.NetSignOff) {
			t.Errorf("host received %s STAN %v after the in-flight sale, want the sign-off", m.MTI, m.STAN)
		}
		if _, ok := <-hc.recv; ok {
			t.Error("the connection stayed open after the drain")
		}
		c.stop()
		if st := c.Status(); st.Online {
			t.Errorf("Status after the drain = %+v", st)
		}
	})
	t.Run("context ends first", func(t *testing.T) {
		_, c, hc, _, got, _ := start(t)
		if err := <-drain(c, 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Drain: %v, want context.DeadlineExceeded", err)
		}
		if o := <-got; !errors.Is(o.err, sterad.ErrNoResponse) {
			t.Errorf("in-flight sale: %v, want ErrNoResponse (reverse it)", o.err)
		}
		if m, ok := <-hc.recv; ok {
			t.Errorf("host received %s after the drain's deadline, want the connection closed", m.MTI)
		}
	})
}
