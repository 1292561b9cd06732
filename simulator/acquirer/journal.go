package acquirer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// JournalFile is the name of the journal in Options.DataDir.
const JournalFile = "acquirer.jsonl"

// DefaultSyncInterval is how often the journal is fsynced when it has
// unsynced writes.
const DefaultSyncInterval = time.Second

// journal is an append-only JSON-lines file of events. Events are buffered
// in memory under the state lock (append, no I/O); the connection writes
// the buffer to the file (flush: one write for everything pending, so
// concurrent requests share a write) before it sends the response, so a
// killed process never forgets what it answered. fsync runs at most every
// sync interval, off the request path: an OS crash may lose the last
// interval.
type journal struct {
	log *slog.Logger

	mu      sync.Mutex // guards pending
	pending []byte

	wmu   sync.Mutex // serializes file writes; guards f, dirty
	f     *os.File
	dirty bool

	stop chan struct{}
	done chan struct{}
}

// openJournal opens (creating) the journal in dir and replays it through
// apply. A torn last line (a crash mid-write) is cut off; a bad line
// before the end is an error.
func openJournal(dir string, interval time.Duration, log *slog.Logger, apply func(event)) (*journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, JournalFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	good, n, err := replay(f, apply)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("replay journal: %w", err)
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("truncate journal: %w", err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek journal: %w", err)
	}
	log.Info("journal replayed", "path", path, "events", n)
	j := &journal{log: log, f: f, stop: make(chan struct{}), done: make(chan struct{})}
	go j.syncLoop(interval)
	return j, nil
}

// replay applies every complete line and returns the offset after the
// last one.
func replay(r io.Reader, apply func(event)) (good int64, n int, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			return good, n, nil // a torn line without its newline is dropped
		}
		if err != nil {
			return good, n, err
		}
		var ev event
		if err := json.Unmarshal(bytes.TrimSpace(line), &ev); err != nil {
			if _, peekErr := br.Peek(1); peekErr == io.EOF {
				return good, n, nil // torn last line
			}
			return good, n, fmt.Errorf("line %d: %w", n+1, err)
		}
		apply(ev)
		good += int64(len(line))
		n++
	}
}

// append buffers ev. It is called with the state lock held and does no I/O.
func (j *journal) append(ev *event) {
	b, err := json.Marshal(ev)
	if err != nil {
		j.log.Error("cannot encode journal event", "err", err)
		return
	}
	j.mu.Lock()
	j.pending = append(append(j.pending, b...), '\n')
	j.mu.Unlock()
}

// flush writes what is pending. When it returns, every event appended
// before the call is in the file (possibly written by another caller).
func (j *journal) flush() error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	j.mu.Lock()
	buf := j.pending
	j.pending = nil
	j.mu.Unlock()
	if len(buf) == 0 || j.f == nil {
		return nil
	}
	j.dirty = true
	if _, err := j.f.Write(buf); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	return nil
}

func (j *journal) sync() error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	if !j.dirty || j.f == nil {
		return nil
	}
	j.dirty = false
	return j.f.Sync()
}

func (j *journal) syncLoop(interval time.Duration) {
	defer close(j.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-t.C:
			if err := j.sync(); err != nil {
				j.log.Error("fsync journal", "err", err)
			}
		}
	}
}

// close flushes, syncs and closes the file.
func (j *journal) close() error {
	close(j.stop)
	<-j.done
	err := j.flush()
	if e := j.sync(); err == nil {
		err = e
	}
	j.wmu.Lock()
	defer j.wmu.Unlock()
	if e := j.f.Close(); err == nil {
		err = e
	}
	j.f = nil
	return err
}
