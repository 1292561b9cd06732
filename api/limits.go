package api

import (
	"container/list"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Connection bounds (defaults of ConnGuard).
const (
	DefaultMaxConns                     = 256
	DefaultMaxUnauthenticatedConns      = 64
	DefaultMaxUnauthenticatedConnsPerIP = 16
)

// ConnGuard bounds the API's connections: at most Max in all, at most
// MaxUnauthenticated that have not yet made a request with the right
// token (a client that only ever calls /healthz, or sends nothing, or
// trickles its headers, counts there), and at most
// MaxUnauthenticatedPerIP of those from one address.
//
// A new connection over a bound closes another: over the per-address
// bound, that address's oldest unauthenticated connection; over the
// others, the oldest unauthenticated connection of the address that holds
// the most; when every connection is authenticated, the oldest idle one;
// when none is idle, the new connection is closed at once. A flood from a
// few addresses therefore only ever closes its own connections, and a
// client with the token gets in: its new connection is closed only if its
// address holds as many unauthenticated connections as any other, and
// then only once MaxUnauthenticated newer ones have come before its first
// request was read.
//
// Wire it as the http.Server's listener (Listener, below any TLS), its
// ConnState and its ConnContext; the Server's token check marks the
// connection authenticated.
type ConnGuard struct {
	Max                     int // default DefaultMaxConns
	MaxUnauthenticated      int // default DefaultMaxUnauthenticatedConns
	MaxUnauthenticatedPerIP int // default DefaultMaxUnauthenticatedConnsPerIP
	Logger                  *slog.Logger

	mu     sync.Mutex
	conns  map[*guardedConn]struct{}
	unauth list.List      // *guardedConn not yet authenticated, oldest first
	byIP   map[string]int // unauthenticated connections by remote address

	evicted, refused atomic.Int64
	lastLog          atomic.Int64 // unix seconds of the last "evicting" log line
}

// ConnStats are a ConnGuard's counts.
type ConnStats struct {
	Open            int   `json:"open"`
	Unauthenticated int   `json:"unauthenticated"`
	Evicted         int64 `json:"evicted"` // closed to make room
	Refused         int64 `json:"refused"` // closed at once: every connection busy and authenticated
}

// Stats returns the counts now.
func (g *ConnGuard) Stats() ConnStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return ConnStats{Open: len(g.conns), Unauthenticated: g.unauth.Len(), Evicted: g.evicted.Load(), Refused: g.refused.Load()}
}

func (g *ConnGuard) limits() (max, unauth, perIP int) {
	max, unauth, perIP = g.Max, g.MaxUnauthenticated, g.MaxUnauthenticatedPerIP
	if max <= 0 {
		max = DefaultMaxConns
	}
	if unauth <= 0 {
		unauth = DefaultMaxUnauthenticatedConns
	}
	if perIP <= 0 {
		perIP = DefaultMaxUnauthenticatedConnsPerIP
	}
	unauth = min(unauth, max)
	return max, unauth, min(perIP, unauth)
}

// Listener returns ln with the guard's bounds.
func (g *ConnGuard) Listener(ln net.Listener) net.Listener {
	return &guardedListener{Listener: ln, g: g}
}

type guardedListener struct {
	net.Listener
	g *ConnGuard
}

func (l *guardedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if gc := l.g.admit(c); gc != nil {
			return gc, nil
		}
	}
}

type guardedConn struct {
	net.Conn
	g        *ConnGuard
	ip       string // remote address, without the port
	accepted time.Time
	// Guarded by g.mu.
	elem  *list.Element // in g.unauth while not authenticated
	state http.ConnState
	gone  bool
}

func (c *guardedConn) Close() error {
	c.g.remove(c)
	return c.Conn.Close()
}

// admit adds c, making room as the bounds say; nil when c was refused
// (and closed).
func (g *ConnGuard) admit(c net.Conn) *guardedConn {
	max, maxUnauth, perIP := g.limits()
	ip := remoteIP(c)
	var victims []*guardedConn
	g.mu.Lock()
	if g.conns == nil {
		g.conns, g.byIP = map[*guardedConn]struct{}{}, map[string]int{}
	}
	// Tokenless connections are only closed when they are at their
	// bound: a property system that opens many connections at once from
	// one address is not cut off while there is room. At the bound, an
	// address holding its share or more loses its own oldest first, so a
	// flood closes its own connections.
	for g.unauth.Len() >= maxUnauth {
		from := ""
		if g.byIP[ip] >= perIP {
			from = ip
		}
		victims = append(victims, g.dropLocked(g.oldestUnauthLocked(from)))
	}
	if len(g.conns) >= max {
		var v *guardedConn
		if g.unauth.Len() > 0 {
			v = g.oldestUnauthLocked("")
		} else {
			for o := range g.conns {
				if o.state == http.StateIdle && (v == nil || o.accepted.Before(v.accepted)) {
					v = o
				}
			}
		}
		if v == nil {
			g.mu.Unlock()
			g.refused.Add(1)
			g.note("API connections at their bound, all busy: a new connection was refused", max)
			c.Close()
			return nil
		}
		victims = append(victims, g.dropLocked(v))
	}
	gc := &guardedConn{Conn: c, g: g, ip: ip, accepted: time.Now(), state: http.StateNew}
	g.conns[gc] = struct{}{}
	gc.elem = g.unauth.PushBack(gc)
	g.byIP[ip]++
	g.mu.Unlock()
	for _, v := range victims {
		v.Conn.Close()
	}
	if len(victims) > 0 {
		g.evicted.Add(int64(len(victims)))
		g.note("API connections at their bound: the oldest unauthenticated or idle ones are closed", max)
	}
	return gc
}

// note logs a bound reached, at most once a minute.
func (g *ConnGuard) note(msg string, max int) {
	if g.Logger == nil {
		return
	}
	now := time.Now().Unix()
	last := g.lastLog.Load()
	if now-last < 60 || !g.lastLog.CompareAndSwap(last, now) {
		return
	}
	st := g.Stats()
	g.Logger.Warn(msg, "max", max, "open", st.Open, "unauthenticated", st.Unauthenticated, "evicted", st.Evicted, "refused", st.Refused)
}

// oldestUnauthLocked returns the oldest unauthenticated connection from
// ip or, for "", from the address that holds the most; there must be one.
func (g *ConnGuard) oldestUnauthLocked(ip string) *guardedConn {
	if ip == "" {
		most := 0
		for a, n := range g.byIP {
			if n > most {
				ip, most = a, n
			}
		}
		// Ties: the address whose connection is oldest.
		for e := g.unauth.Front(); e != nil; e = e.Next() {
			if c := e.Value.(*guardedConn); g.byIP[c.ip] == most {
				return c
			}
		}
	}
	for e := g.unauth.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*guardedConn); c.ip == ip {
			return c
		}
	}
	return g.unauth.Front().Value.(*guardedConn)
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return "?"
}

// unauthDoneLocked takes c out of the unauthenticated connections.
func (g *ConnGuard) unauthDoneLocked(c *guardedConn) {
	if c.elem == nil {
		return
	}
	g.unauth.Remove(c.elem)
	c.elem = nil
	if g.byIP[c.ip]--; g.byIP[c.ip] <= 0 {
		delete(g.byIP, c.ip)
	}
}

// dropLocked forgets c; the caller closes it.
func (g *ConnGuard) dropLocked(c *guardedConn) *guardedConn {
	g.unauthDoneLocked(c)
	delete(g.conns, c)
	c.gone = true
	return c
}

func (g *ConnGuard) remove(c *guardedConn) {
	g.mu.Lock()
	if !c.gone {
		g.dropLocked(c)
	}
	g.mu.Unlock()
}

// guarded finds the guard's connection under what the http.Server sees
// (a *tls.Conn wraps it).
func guarded(c net.Conn) *guardedConn {
	for c != nil {
		if gc, ok := c.(*guardedConn); ok {
			return gc
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = u.NetConn()
	}
	return nil
}

// ConnState is the http.Server's ConnState hook.
func (g *ConnGuard) ConnState(c net.Conn, st http.ConnState) {
	gc := guarded(c)
	if gc == nil {
		return
	}
	if st == http.StateClosed || st == http.StateHijacked {
		g.remove(gc)
		return
	}
	g.mu.Lock()
	gc.state = st
	g.mu.Unlock()
}

type connKey struct{}

// ConnContext is the http.Server's ConnContext hook: it lets the token
// check find the connection.
func (g *ConnGuard) ConnContext(ctx context.Context, c net.Conn) context.Context {
	if gc := guarded(c); gc != nil {
		return context.WithValue(ctx, connKey{}, gc)
	}
	return ctx
}

// markAuthenticated notes that the request's connection presented the
// right token: it no longer counts as unauthenticated.
func markAuthenticated(ctx context.Context) {
	gc, _ := ctx.Value(connKey{}).(*guardedConn)
	if gc == nil {
		return
	}
	g := gc.g
	g.mu.Lock()
	g.unauthDoneLocked(gc)
	g.mu.Unlock()
}

// waitLong serves a request whose handler may wait longer than the
// server's read and write timeouts (a payment waiting for the card and
// the acquirer, a batch close, a queue flush). The body is read first,
// under the read timeout; then the connection's deadlines are lifted for
// the wait, and the write deadline is set again, AnswerTimeout from then,
// when the answer starts. Without this, the read timeout would cancel the
// request's context and the write timeout would drop the answer of a
// payment that took longer than they do.
func (s *Server) waitLong(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		body, err := readBody(r.Body)
		r.Body = body
		if err == nil {
			_ = rc.SetReadDeadline(time.Time{})
			_ = rc.SetWriteDeadline(time.Time{})
		}
		h(&answerDeadline{ResponseWriter: w, rc: rc, d: s.AnswerTimeout}, r)
	}
}

// readBody reads at most MaxBodyBytes+1 of body (DecodeJSON judges the
// size) and returns a body that replays it, then the read error if any.
func readBody(b io.ReadCloser) (io.ReadCloser, error) {
	if b == nil || b == http.NoBody {
		return b, nil
	}
	data, err := io.ReadAll(io.LimitReader(b, MaxBodyBytes+1))
	return &readAhead{data: data, err: err, Closer: b}, err
}

// readAhead is a body read ahead (readBody): it replays data, then ends
// with err (io.EOF when the read had none). DecodeJSON takes data as it
// is instead of reading it again.
type readAhead struct {
	data []byte
	off  int
	err  error
	io.Closer
}

func (r *readAhead) Read(p []byte) (int, error) {
	if r.off < len(r.data) {
		n := copy(p, r.data[r.off:])
		r.off += n
		return n, nil
	}
	if r.err != nil {
		return 0, r.err
	}
	return 0, io.EOF
}

// unread returns the bytes not yet read, and the read's error; it marks
// them read.
func (r *readAhead) unread() ([]byte, error) {
	b := r.data[r.off:]
	r.off = len(r.data)
	return b, r.err
}

// answerDeadline sets the write deadline when the answer starts.
type answerDeadline struct {
	http.ResponseWriter
	rc      *http.ResponseController
	d       time.Duration
	started bool
}

func (a *answerDeadline) start() {
	if !a.started {
		a.started = true
		if a.d > 0 {
			_ = a.rc.SetWriteDeadline(time.Now().Add(a.d))
		}
	}
}

func (a *answerDeadline) WriteHeader(code int) { a.start(); a.ResponseWriter.WriteHeader(code) }

func (a *answerDeadline) Write(b []byte) (int, error) { a.start(); return a.ResponseWriter.Write(b) }

func (a *answerDeadline) Unwrap() http.ResponseWriter { return a.ResponseWriter }
