package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/offline"
	"github.com/sterad/sterad/simulator/acquirer"
)

// maxBenchQueued bounds --queued: the stood-in sales share one terminal's
// STANs of one day (999,999).
const maxBenchQueued = 900_000

// queueWindow is the end of the rest whose highest RSS is the figure:
// longer than the forwarder's retry interval (gateway.DefaultRetryInterval).
const queueWindow = 6 * time.Second

// queueRun is what the memory run measured.
type queueRun struct {
	n        int
	rss, hwm int64 // bytes: the highest VmRSS at the end of the rest; VmHWM
}

// benchQueued prepares a store in which n stood-in sales wait with their
// advices in the store-and-forward queue, starts the daemon on it with
// the acquirer unreachable, checks that it lists them, measures its
// memory and, with drain, times the drain when the acquirer is back.
func benchQueued(ctx context.Context, out io.Writer, work, kek, daemon string, n int, rest time.Duration, drain bool, memProfile string) (*queueRun, error) {
	dataDir := filepath.Join(work, "queued")
	t0 := time.Now()
	if err := prepareQueue(ctx, dataDir, kek, n); err != nil {
		return nil, fmt.Errorf("prepare %d queued advices: %w", n, err)
	}
	prepared := time.Since(t0)

	// The acquirer of this run: down (connections refused) until the drain.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	host := acquirer.New(acquirer.Options{})
	defer host.Close()
	host.SetOutage(true) // Serve closes ln and listens again when it ends
	go host.Serve(ln)

	start := time.Now()
	d, err := startDaemonProc(ctx, daemonSpec{exe: daemon, name: "queued", work: work, dataDir: dataDir, kekFile: kek, acquirer: ln.Addr().String(),
		within: 10 * time.Minute, memProfile: memProfile, clients: 2})
	if err != nil {
		return nil, err
	}
	defer d.kill()
	up := time.Since(start)
	// Memory at rest with the queue: nothing calls the daemon for rest
	// (its startup's garbage goes back to the system meanwhile; its
	// forwarder looks at the queue every retry interval on its own). The
	// figure is the highest VmRSS over the last seconds of that, which
	// span one retry interval. Then one status read checks that it lists
	// every advice as queued: GET /v1/status counts the queue from memory
	// and reads only the alerts; its time and cost are shown after.
	r := &queueRun{n: n}
	type sample struct {
		at time.Time
		m  procMemory
	}
	var samples []sample
	err = pollUntil(ctx, rest, 100*time.Millisecond, func() (bool, error) {
		m, err := d.memory()
		if err == nil {
			samples = append(samples, sample{time.Now(), m})
		}
		return false, err
	})
	if len(samples) == 0 {
		return nil, err
	}
	first, end := samples[0].m, samples[len(samples)-1].at
	var top procMemory
	for _, s := range samples {
		if end.Sub(s.at) <= queueWindow && s.m.rss > top.rss {
			top = s.m
		}
	}
	r.rss = top.rss
	t1 := time.Now()
	st, err := d.c.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("the daemon's status: %w\n%s", err, d.lastLines())
	}
	statusTook := time.Since(t1)
	if st.Queue.Depth != n || st.Acquirer.Online {
		return nil, fmt.Errorf("the daemon lists %d queued (acquirer online: %v), want %d during the outage", st.Queue.Depth, st.Acquirer.Online, n)
	}
	after, err := d.memory()
	if err != nil {
		return nil, err
	}
	r.hwm = after.hwm
	fmt.Fprintf(out, "4. %d stood-in sales with their advices (0220) queued for an unreachable acquirer (store prepared in %s, %s): the daemon was up in %s and lists %d queued (GET /v1/status)\n",
		n, prepared.Round(time.Millisecond), mbytes(dirBytes(dataDir)), up.Round(time.Millisecond), st.Queue.Depth)
	fmt.Fprintf(out, "   daemon memory at rest with the queue: RSS %s (%s anonymous, %s file-backed: the store's memory map), the highest over the last %s of %s at rest; at its start %s; peak %s (VmHWM)\n",
		mbytes(top.rss), mbytes(top.anon), mbytes(top.file), min(queueWindow, rest), rest, mbytes(first.rss), mbytes(r.hwm))
	fmt.Fprintf(out, "   one GET /v1/status took %s; RSS after it %s (%s anonymous)\n", statusTook.Round(time.Millisecond), mbytes(after.rss), mbytes(after.anon))
	if memProfile != "" {
		if err := d.signalLogged(syscall.SIGUSR2, "heap profile written"); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "   heap profile of the daemon: %s\n", memProfile)
	}

	if drain {
		if err := benchDrain(ctx, out, d, host, n); err != nil {
			return nil, err
		}
	}
	return r, d.stop(time.Minute)
}

// benchDrain ends the outage and times the advices until the daemon's
// queue is empty.
func benchDrain(ctx context.Context, out io.Writer, d *daemonProc, host *acquirer.Host, n int) error {
	advices := func() int64 {
		s := host.Stats()
		return s.Requests[string(sterad.MTIAdvice)] + s.Requests[string(sterad.MTIAdviceRepeat)]
	}
	back := time.Now()
	if err := host.SetOutage(false); err != nil {
		return err
	}
	var first time.Time
	err := pollUntil(ctx, 10*time.Minute, 10*time.Millisecond, func() (bool, error) {
		a := advices()
		if a > 0 && first.IsZero() {
			first = time.Now()
		}
		return a >= int64(n), nil
	})
	if err != nil {
		return fmt.Errorf("drain: the acquirer received %d of %d advices: %w", advices(), n, err)
	}
	// Every advice reached the acquirer: the daemon's queue empties as it
	// journals the answers.
	var depth int
	err = pollUntil(ctx, time.Minute, 20*time.Millisecond, func() (bool, error) {
		st, err := d.c.Status(ctx)
		if err == nil {
			depth = st.Queue.Depth
		}
		return err == nil && depth == 0, nil
	})
	if err != nil {
		return fmt.Errorf("drain: %d still queued: %w", depth, err)
	}
	took := time.Since(first)
	fmt.Fprintf(out, "   drain when the acquirer was back: %d advices in %s, %.0f/s (from the first advice; the daemon reconnected %s after the acquirer came back: its backoff)\n",
		n, took.Round(time.Millisecond), float64(n)/took.Seconds(), first.Sub(back).Round(time.Millisecond))
	return nil
}

// prepareQueue writes a store in dataDir in which n stood-in sales wait
// with their advices. The first is made by the gateway itself: an
// in-process sterad with its simulators takes a sale at a terminal while
// the test acquirer is down. The others are copies of its records (the
// transaction, its sealed card, its queue item), each with its own ID and
// STAN, written straight to the store in large commits.
func prepareQueue(ctx context.Context, dataDir, kek string, n int) error {
	cfg := DefaultConfig()
	cfg.DataDir, cfg.KEKFile, cfg.CardData = dataDir, kek, sterad.CardDataClear
	cfg.API.Listen, cfg.Acquirer.Address = "127.0.0.1:0", "127.0.0.1:0"
	m := &Main{Config: cfg, Simulate: true, SimHostMemory: true, NoNightlyClose: true}
	if err := m.Run(ctx); err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			m.Close()
		}
	}()
	c := api.NewClient(m.APIAddr, m.Token)
	const term = "FRONT001"
	err := pollUntil(ctx, time.Minute, 20*time.Millisecond, func() (bool, error) {
		st, err := c.Status(ctx)
		if err != nil || !st.Acquirer.Online {
			return false, nil
		}
		for _, t := range st.Terminals {
			if t.ID == term && t.State == sterad.TerminalReady {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("the simulators: %w", err)
	}
	if err := m.SimHost.SetOutage(true); err != nil {
		return err
	}
	if err := pollUntil(ctx, time.Minute, 10*time.Millisecond, func() (bool, error) { return !m.Client.Status().Online, nil }); err != nil {
		return fmt.Errorf("the outage: %w", err)
	}
	t, _, err := m.Gateway.Submit(ctx, sterad.Request{Op: string(sterad.OpSale), Terminal: term, Amount: "12800", Wait: true})
	if err != nil {
		return err
	}
	if t.Status != sterad.StatusStoodIn {
		return fmt.Errorf("the sale was %s, not stood in: %s", t.Status, t.Reason)
	}
	tmpl, err := m.DB.Transaction(ctx, t.ID)
	if err != nil {
		return err
	}
	card, err := m.DB.OpenCard(ctx, t.ID)
	if err != nil {
		return err
	}
	defer card.Wipe()
	items, err := m.DB.Queue(ctx)
	if err != nil || len(items) != 1 || items[0].TxnID != t.ID || items[0].Kind != sterad.QueueAdvice {
		return fmt.Errorf("the stood-in sale's queue: %v %+v", err, items)
	}
	item := items[0]
	closed = true
	m.Close()
	os.RemoveAll(filepath.Join(dataDir, "sim")) // the simulators' state: not the daemon's

	keks, err := loadKEKsAt(kek, dataDir)
	if err != nil {
		return err
	}
	opts := offline.DefaultOptions()
	opts.KEKs = keks
	db, err := offline.Open(dataDir, opts)
	if err != nil {
		return err
	}
	defer db.Close()
	record, err := json.Marshal(tmpl)
	if err != nil {
		return err
	}
	const perCommit = 500
	for done := 1; done < n; {
		var ch sterad.Change
		for ; done < n && len(ch.Put) < perCommit; done++ {
			var cp sterad.Transaction
			if err := json.Unmarshal(record, &cp); err != nil {
				return err
			}
			cp.ID, cp.Version = ulid.Make().String(), 0
			if cp.STAN, err = db.NextSTAN(ctx, cp.TerminalID, cp.Transmitted); err != nil {
				return err
			}
			it := item
			it.Seq, it.TxnID = 0, cp.ID
			cc := *card
			ch.Put = append(ch.Put, &cp)
			ch.SealCards = append(ch.SealCards, sterad.SealCard{Owner: cp.ID, Card: &cc})
			ch.Enqueue = append(ch.Enqueue, it)
		}
		if err := db.Apply(ctx, ch); err != nil {
			return err
		}
	}
	return nil
}
