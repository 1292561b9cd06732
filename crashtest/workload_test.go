//go:build linux

package crashtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/simulator/terminal"
)

// opTimeout bounds one client request, retries after kills included.
const opTimeout = 3 * time.Minute

// Test cards (docs/acquirer-protocol.md §7).
var (
	approvingCards = []sterad.PAN{"4111111111111111", "5555555555554444", "3530111333300000", "378282246310005", "30569309025904", "6250947000000014"}
	// declining keyed cards: 05, 51, 54, no response at all, 96.
	decliningCards = []sterad.PAN{"4000000000000002", "4000000000009995", "4000000000000069", "4000000000000119", "4000000000000226"}
)

// Amounts: every request gets a sequence number n and an amount no other
// request has, so every host entry names its request. Refunds are n yen
// (less than any charge); sales 1000000+n, pre-authorizations and
// completions 2000000+n, no-shows 3000000+n: all under the host's
// ¥10,000,000 limit.
const amountBase = 1000000

func amountFor(op string, n int64) int64 {
	switch op {
	case "refund":
		return n
	case "sale":
		return amountBase + n
	case "preauth", "completion":
		return 2*amountBase + n
	case "noshow":
		return 3*amountBase + n
	}
	return 0
}

// Op kinds the workload picks from, with weights.
const (
	kKeyedSale   = "keyed-sale"
	kDeclineSale = "declining-sale"
	kPreauth     = "preauth+completion"
	kDeskSale    = "card-present-sale"
	kRefund      = "refund"
	kVoid        = "void"
	kNoShow      = "noshow"
)

type weighted struct {
	kind   string
	weight int
}

// mix is the op mix of the clients; the desk clients (one per terminal:
// clients 0 and 1) do card-present sales too. New ops (incrementals, card checks, ...) are one
// more entry here and one more case in workload.do.
type mix struct {
	keyed []weighted
	desk  []weighted
	blind bool // card_data: blind: nothing keyed, a sale is made at the terminal
}

func defaultMix() mix {
	keyed := []weighted{{kKeyedSale, 30}, {kDeclineSale, 8}, {kPreauth, 15}, {kRefund, 10}, {kVoid, 8}, {kNoShow, 5}}
	return mix{keyed: keyed, desk: append([]weighted{{kDeskSale, 60}}, keyed...)}
}

// blindMix is the op mix with card_data: blind: no card is keyed through
// the API, so every debit is a card-present sale at the encrypting
// terminals (the desk clients', or any client's when it has nothing to
// refund or void yet); refunds and voids go by TI.
func blindMix() mix {
	linked := []weighted{{kRefund, 10}, {kVoid, 8}}
	return mix{keyed: linked, desk: append([]weighted{{kDeskSale, 60}}, linked...), blind: true}
}

// salesOnly is the negative control's mix: keyed sales, the requests the
// broken build sends before journaling them.
func salesOnly() mix {
	only := []weighted{{kKeyedSale, 1}}
	return mix{keyed: only, desk: only}
}

func pick(rng *rand.Rand, ws []weighted, enabled func(string) bool) string {
	total := 0
	for _, w := range ws {
		if enabled(w.kind) {
			total += w.weight
		}
	}
	n := rng.IntN(total)
	for _, w := range ws {
		if !enabled(w.kind) {
			continue
		}
		if n < w.weight {
			return w.kind
		}
		n -= w.weight
	}
	return ws[0].kind
}

// origin is an approved transaction a later refund or void may name.
type origin struct {
	id     string
	op     string
	amount int64
}

// workload drives the daemon's API from concurrent clients and records
// what every request finally got.
type workload struct {
	h     *harness
	seed  uint64
	mix   mix
	seq   atomic.Int64
	start time.Time

	noShow bool // the daemon accepts no-show charges

	mu       sync.Mutex
	records  []*Record
	debits   []origin // approved sales, completions, no-shows: refundable, voidable
	refunds  []origin // approved refunds: voidable
	preauths []origin // approved pre-authorizations left open: voidable
	kinds    map[string]int
}

func newWorkload(h *harness, seed uint64, m mix) *workload {
	return &workload{h: h, seed: seed, mix: m, kinds: map[string]int{}, start: time.Now()}
}

// run runs n clients until ctx ends; each finishes the request it is
// making (retrying until the daemon answers) before run returns.
func (w *workload) run(ctx context.Context, n int) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(w.seed, uint64(i)+1))
			for ctx.Err() == nil {
				ws := w.mix.keyed
				if i < len(deskTIDs) { // one desk client per terminal
					ws = w.mix.desk
				}
				w.do(i, rng, pick(rng, ws, w.enabled))
			}
		}()
	}
	wg.Wait()
}

func (w *workload) enabled(kind string) bool {
	switch kind {
	case kNoShow:
		return w.noShow
	}
	return true
}

func (w *workload) next() int64 {
	n := w.seq.Add(1)
	if n >= amountBase {
		panic("crashtest: too many requests: amounts would no longer be unique")
	}
	return n
}

func expiry() string { return time.Now().AddDate(2, 0, 0).Format("0601") }

func stayFrom(days int) *api.StayInput {
	in := time.Now().AddDate(0, 0, days)
	return &api.StayInput{CheckIn: in.Format(time.DateOnly), CheckOut: in.AddDate(0, 0, 2).Format(time.DateOnly)}
}

// do makes one operation of the given kind (which may be several
// requests: a pre-authorization and its completion).
func (w *workload) do(client int, rng *rand.Rand, kind string) {
	w.mu.Lock()
	w.kinds[kind]++
	w.mu.Unlock()
	switch kind {
	case kKeyedSale, kDeclineSale:
		pan := approvingCards[rng.IntN(len(approvingCards))]
		if kind == kDeclineSale {
			pan = decliningCards[rng.IntN(len(decliningCards))]
		}
		n := w.next()
		r := w.submit(client, api.TransactionRequest{Op: "sale", Amount: amt(amountFor("sale", n)), Card: &api.CardInput{PAN: pan, Expiry: expiry()}}, n)
		w.approved(r, &w.debits)
	case kNoShow:
		n := w.next()
		r := w.submit(client, api.TransactionRequest{Op: "noshow", Amount: amt(amountFor("noshow", n)), Reference: fmt.Sprintf("CT-NS-%d", n),
			Card: &api.CardInput{PAN: approvingCards[rng.IntN(len(approvingCards))], Expiry: expiry()}, Stay: stayFrom(-3)}, n)
		w.approved(r, &w.debits)
	case kPreauth:
		n := w.next()
		r := w.submit(client, api.TransactionRequest{Op: "preauth", Amount: amt(amountFor("preauth", n)), Reference: fmt.Sprintf("CT-RSV-%d", n),
			Card: &api.CardInput{PAN: approvingCards[rng.IntN(len(approvingCards))], Expiry: expiry()}, Stay: stayFrom(0)}, n)
		if r.Status != string(sterad.StatusApproved) || r.TxnID == "" {
			return
		}
		if rng.IntN(4) == 0 { // left open: a later void may cancel it
			w.approved(r, &w.preauths)
			return
		}
		m := w.next()
		c := w.submit(client, api.TransactionRequest{Op: "completion", Original: r.TxnID, Amount: amt(amountFor("completion", m))}, m)
		w.approved(c, &w.debits)
	case kDeskSale:
		// A desk client sells at its own terminal; another client (one
		// with nothing to refund or void yet in card_data: blind) at the
		// terminal its number falls on.
		term := client % len(deskTIDs)
		w.deskCard(term, rng)
		n := w.next()
		r := w.submit(client, api.TransactionRequest{Op: "sale", Terminal: deskTIDs[term], Amount: amt(amountFor("sale", n))}, n)
		w.approved(r, &w.debits)
	case kRefund:
		o, ok := w.take(rng, &w.debits, false)
		if !ok {
			w.do(client, rng, w.firstDebit())
			return
		}
		n := w.next()
		r := w.submit(client, api.TransactionRequest{Op: "refund", Original: o.id, Amount: amt(amountFor("refund", n))}, n)
		w.approved(r, &w.refunds)
	case kVoid:
		pools := []*[]origin{&w.debits, &w.refunds, &w.preauths}
		pool := pools[rng.IntN(len(pools))]
		o, ok := w.take(rng, pool, true)
		if !ok {
			w.do(client, rng, w.firstDebit())
			return
		}
		w.submit(client, api.TransactionRequest{Op: "void", Original: o.id}, w.next())
	default:
		panic("crashtest: unknown op kind " + kind)
	}
}

// firstDebit is what a client does when it has nothing to refund or void.
func (w *workload) firstDebit() string {
	if w.mix.blind {
		return kDeskSale
	}
	return kKeyedSale
}

func amt(n int64) api.FlexAmount { return api.FlexAmount(fmt.Sprint(n)) }

// deskCard queues the card the next customer presents at terminal term,
// unless one is still queued from a request that never reached it.
func (w *workload) deskCard(term int, rng *rand.Rand) {
	st, err := w.h.terminalState(term)
	if err != nil || st.QueuedCards > 0 {
		return
	}
	c := terminal.Card{PAN: approvingCards[rng.IntN(len(approvingCards))], Expiry: expiry(),
		Entry: []string{"chip", "ctls", "swipe"}[rng.IntN(3)]}
	switch x := rng.IntN(20); {
	case x == 0:
		c.Action = terminal.ActionCancel
	case x <= 2:
		c.PAN = decliningCards[rng.IntN(3)] // 05, 51, 54
	}
	if err := w.h.pushCard(term, c); err != nil {
		w.h.note("push card: %v", err)
	}
}

// approved adds an approved request's transaction to a pool.
func (w *workload) approved(r *Record, pool *[]origin) {
	if r.Status != string(sterad.StatusApproved) || r.TxnID == "" || r.ErrCode != "" {
		return
	}
	w.mu.Lock()
	*pool = append(*pool, origin{id: r.TxnID, op: r.Op, amount: r.Amount})
	w.mu.Unlock()
}

// take picks a random entry of pool; remove takes it out (a void: nothing
// else may use it).
func (w *workload) take(rng *rand.Rand, pool *[]origin, remove bool) (origin, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(*pool) == 0 {
		return origin{}, false
	}
	i := rng.IntN(len(*pool))
	o := (*pool)[i]
	if remove {
		*pool = slices.Delete(*pool, i, i+1)
	}
	return o, true
}

// submit posts one request under its own Idempotency-Key and repeats it,
// same key and same body, until the daemon answers (or opTimeout passes).
// Only an answer counts: a refused or reset connection means the daemon
// died and will be back.
func (w *workload) submit(client int, req api.TransactionRequest, n int64) *Record {
	r := &Record{Client: client, Key: fmt.Sprintf("ct-%d-%d", client, n), Op: req.Op, Original: req.Original, Terminal: req.Terminal, Sent: time.Now()}
	if req.Op != "void" {
		r.Amount = amountFor(req.Op, n)
	}
	if req.Card != nil {
		r.Card = req.Card.PAN.Masked()
	}
	w.mu.Lock()
	w.records = append(w.records, r)
	w.mu.Unlock()

	deadline := time.Now().Add(opTimeout)
	internal := 0
	for {
		w.mu.Lock()
		r.Attempts++
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		tx, code, err := w.h.api.CreateTransaction(ctx, req, api.CreateOptions{IdempotencyKey: r.Key})
		cancel()
		var ae *api.Error
		switch {
		case err == nil:
			w.answer(r, code, tx, "")
			return r
		case errors.As(err, &ae) && ae.Status >= 500 && ae.Status != 503 && internal < 3:
			internal++ // an internal error: the same key is safe to repeat
			w.h.note("client %d key %s: %v: repeating", client, r.Key, err)
		case errors.As(err, &ae):
			w.answer(r, ae.Status, ae.Transaction, ae.Code)
			return r
		}
		if time.Now().After(deadline) {
			w.h.note("client %d key %s: no answer within %s: giving up (%v)", client, r.Key, opTimeout, err)
			w.mu.Lock()
			r.Done = time.Now()
			w.mu.Unlock()
			return r
		}
		time.Sleep(25 * time.Millisecond) // poll until the daemon is back
	}
}

func (w *workload) answer(r *Record, code int, tx *api.Transaction, errCode string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r.Answered, r.HTTP, r.ErrCode, r.Done = true, code, errCode, time.Now()
	if tx != nil {
		r.TxnID, r.Status = tx.ID, tx.Status
		if !slices.Contains(r.IDs, tx.ID) {
			r.IDs = append(r.IDs, tx.ID)
		}
	}
}

// snapshot returns copies of the records.
func (w *workload) snapshot() []*Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*Record, len(w.records))
	for i, r := range w.records {
		c := *r
		c.IDs = slices.Clone(r.IDs)
		out[i] = &c
	}
	return out
}

// probeNoShow posts one no-show charge: if the daemon does not know the
// op (400 unknown_op) the clients make none. The probe is a request like
// any other and is checked with them.
func (w *workload) probeNoShow() string {
	n := w.next()
	r := w.submit(-1, api.TransactionRequest{Op: "noshow", Amount: amt(amountFor("noshow", n)), Reference: fmt.Sprintf("CT-NS-%d", n),
		Card: &api.CardInput{PAN: approvingCards[0], Expiry: expiry()}, Stay: stayFrom(-3)}, n)
	w.noShow = r.ErrCode != "unknown_op" && r.ErrCode != "malformed_json"
	return r.Told()
}
