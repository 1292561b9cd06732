package modeltest

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/simulator/terminal"
)

// Budgets. `go test ./modeltest/` runs a short budget; `make crashtest`
// a long one (-model.checks 40 -model.steps 60). -short runs even less.
var (
	modelChecks  = flag.Int("model.checks", 4, "model: random action sequences to run per test (rapid checks); -short: 1")
	modelSteps   = flag.Int("model.steps", 25, "model: average actions per sequence (rapid steps)")
	modelWithout = flag.String("model.without", "", "model: comma-separated actions TestModel/all leaves out (to explore past a known defect)")
)

// mtxn is the model's record of one transaction it asked sterad for.
type mtxn struct {
	ID     string
	Op     sterad.Op
	Card   string // test card name; "" when not known (a no-show by reference)
	Amount int64
	Orig   *mtxn
	Ref    string

	Status sterad.Status // as sterad last reported it
	Batch  int
}

func (t *mtxn) String() string {
	s := fmt.Sprintf("%s %s ¥%d", t.ID, t.Op, t.Amount)
	if t.Card != "" {
		s += " " + t.Card
	}
	if t.Orig != nil {
		s += " of " + t.Orig.ID
	}
	return s
}

// machine is the state machine rapid drives: the real gateway (harness)
// and the model's own account of what should hold.
type machine struct {
	h     *harness
	txns  []*mtxn
	byID  map[string]*mtxn
	refs  []string        // reservations guaranteed by a card check
	freed map[string]bool // reservations released by the hotel
	n     int             // reservation numbers
	steps int
	log   func(string, ...any)
}

func newMachine(h *harness, log func(string, ...any)) *machine {
	return &machine{h: h, byID: map[string]*mtxn{}, freed: map[string]bool{}, log: log}
}

// step logs one action and advances the fake clock a minute, so DE 7
// moves on between requests (within one local day).
func (m *machine) step(format string, args ...any) {
	m.steps++
	m.h.clock.Advance(time.Minute)
	m.log("step %d: "+format, append([]any{m.steps}, args...)...)
}

// healthy reports whether the link is up with no fault injected: the
// model then predicts outcomes exactly.
func (m *machine) healthy() bool {
	c := m.h.host.Controls()
	return !c.Outage && c.DelayMS == 0 && c.Drop == 0 && m.h.inc.client.Status().Online
}

// refresh reads sterad's statuses into the model.
func (m *machine) refresh() map[string]*sterad.Transaction {
	by, _, err := m.h.snapshot()
	if err != nil {
		m.h.violate("HARNESS: read transactions: %v", err)
		return nil
	}
	for _, t := range m.txns {
		if s := by[t.ID]; s != nil {
			t.Status, t.Batch = s.Status, s.Batch
		}
	}
	return by
}

func (m *machine) add(t *mtxn) {
	m.txns = append(m.txns, t)
	m.byID[t.ID] = t
}

// submit runs one request to its end and returns the transaction.
func (m *machine) submit(r sterad.Request) (*sterad.Transaction, error) {
	ctx, cancel := m.h.ctx()
	defer cancel()
	r.Wait = true
	t, _, err := m.h.gw().Submit(ctx, r)
	if err == nil && t != nil && !t.Status.Final() && t.Status != sterad.StatusApproved && t.Status != sterad.StatusStoodIn &&
		t.Status != sterad.StatusUnknown && t.Status != sterad.StatusPending {
		m.h.violate("STATUS: %s %s returned in status %q", t.Op, t.ID, t.Status)
	}
	return t, err
}

// expect records a model prediction that sterad broke.
func (m *machine) expect(ok bool, format string, args ...any) {
	if !ok {
		m.h.violate("MODEL: "+format, args...)
	}
}

// asPredicted reports whether t ended as the model predicts for a charge
// on card over a healthy link — or without an answer in time, which a
// loaded machine can cause on any card: then sterad must have treated it
// as an unknown outcome (reversed, or a queued repeat), and the ledger
// checks at the next settle decide whether money moved rightly.
func asPredicted(t *sterad.Transaction, card string) bool {
	return t.Status == predicted(card) || timedOut(t)
}

// timedOut reports whether t's exchange got no answer in time.
func timedOut(t *sterad.Transaction) bool {
	for _, e := range t.Events {
		if strings.Contains(e.Note, "no answer") || strings.Contains(e.Note, "no response") {
			return true
		}
	}
	return false
}

// predicted is the status the model predicts for a charge on a card when
// the link is healthy.
func predicted(card string) sterad.Status {
	switch cardByName(card).Host {
	case "declined":
		return sterad.StatusDeclined
	case "silent":
		return sterad.StatusReversed // no answer: reversed, never charged
	}
	return sterad.StatusApproved
}

func (m *machine) today() string { return sterad.DateOf(m.h.clock.Now().In(m.h.loc)).String() }
func (m *machine) inDays(n int) string {
	return sterad.DateOf(m.h.clock.Now().In(m.h.loc)).AddDays(n).String()
}

// pick draws one of the model's transactions that satisfy ok, or skips.
func (m *machine) pick(t *rapid.T, label string, ok func(*mtxn) bool) *mtxn {
	var c []*mtxn
	for _, x := range m.txns {
		if ok(x) {
			c = append(c, x)
		}
	}
	if len(c) == 0 {
		t.Skip("no " + label)
	}
	return rapid.SampledFrom(c).Draw(t, label)
}

var (
	allCards  = []string{"visa", "mastercard", "jcb", "amex", "declined", "silent"}
	goodCards = []string{"visa", "mastercard", "jcb", "amex"}
	amounts   = []int64{3000, 8000, 12000, 30000}
)

// ---- the operations, callable from rapid actions and from scripts ----

func (m *machine) sale(card string, amount int64, atTerminal bool) *mtxn {
	healthy := m.healthy()
	r := sterad.Request{Op: "sale", Amount: fmt.Sprint(amount)}
	how, ok := m.presentCard(&r, card, atTerminal)
	if !ok {
		return nil
	}
	t, err := m.submit(r)
	if err != nil {
		m.step("sale %s ¥%d %s → refused: %s", card, amount, how, sterad.ErrorCode(err))
		m.expect(!healthy, "a %s sale of ¥%d on %s was refused on a healthy link: %v", how, amount, card, err)
		return nil
	}
	x := &mtxn{ID: t.ID, Op: sterad.OpSale, Card: card, Amount: amount, Status: t.Status, Batch: t.Batch}
	m.add(x)
	m.step("sale %s ¥%d %s → %s %s", card, amount, how, t.ID, t.Status)
	if healthy {
		m.expect(asPredicted(t, card), "%s: a %s sale on %s on a healthy link ended %s, want %s", t.ID, how, card, t.Status, predicted(card))
	}
	return x
}

func (m *machine) preauth(card string, amount int64, atTerminal bool) *mtxn {
	healthy := m.healthy()
	m.n++
	ref := fmt.Sprintf("RES%04d", m.n)
	r := sterad.Request{Op: "preauth", Amount: fmt.Sprint(amount), Reference: ref, CheckIn: m.today(), CheckOut: m.inDays(2)}
	how, ok := m.presentCard(&r, card, atTerminal)
	if !ok {
		return nil
	}
	t, err := m.submit(r)
	if err != nil {
		m.step("preauth %s ¥%d %s → refused: %s", card, amount, how, sterad.ErrorCode(err))
		m.expect(!healthy, "a pre-authorization on %s was refused on a healthy link: %v", card, err)
		return nil
	}
	x := &mtxn{ID: t.ID, Op: sterad.OpPreauth, Card: card, Amount: amount, Ref: ref, Status: t.Status}
	m.add(x)
	m.step("preauth %s ¥%d %s → %s %s", card, amount, how, t.ID, t.Status)
	if healthy {
		m.expect(asPredicted(t, card), "%s: a pre-authorization on %s on a healthy link ended %s, want %s", t.ID, card, t.Status, predicted(card))
	}
	return x
}

// authorized is the model's authorized total of a pre-authorization.
func (m *machine) authorized(p *mtxn) int64 {
	total := p.Amount
	for _, x := range m.txns {
		if x.Orig == p && x.Op == sterad.OpIncremental && x.Status == sterad.StatusApproved {
			total += x.Amount
		}
	}
	return total
}

// completedBy returns the live completion of a pre-authorization.
func (m *machine) completedBy(p *mtxn) *mtxn {
	for _, x := range m.txns {
		if x.Orig == p && x.Op == sterad.OpCompletion && live(x.Status) {
			return x
		}
	}
	return nil
}

func (m *machine) incremental(p *mtxn, amount int64) *mtxn {
	m.refresh()
	healthy := m.healthy()
	allowed := p.Status == sterad.StatusApproved && m.completedBy(p) == nil && !m.beingVoided(p)
	t, err := m.submit(sterad.Request{Op: "incremental", Original: p.ID, Amount: fmt.Sprint(amount)})
	if err != nil {
		m.step("incremental ¥%d of %s → refused: %s", amount, p.ID, sterad.ErrorCode(err))
		m.refresh() // the forwarder may have settled the pre-authorization meanwhile
		allowed = allowed && p.Status == sterad.StatusApproved && !m.beingVoided(p)
		m.expect(!allowed || !healthy, "an incremental of approved, open pre-authorization %s was refused: %v", p.ID, err)
		return nil
	}
	x := &mtxn{ID: t.ID, Op: sterad.OpIncremental, Card: p.Card, Amount: amount, Orig: p, Status: t.Status}
	m.add(x)
	m.step("incremental ¥%d of %s → %s %s", amount, p.ID, t.ID, t.Status)
	m.expect(allowed, "%s: an incremental of %s (%s, completed by %v) was accepted", t.ID, p.ID, p.Status, m.completedBy(p))
	if allowed && healthy {
		m.expect(t.Status == sterad.StatusApproved || timedOut(t), "%s: an incremental on a healthy link ended %s", t.ID, t.Status)
	}
	return x
}

func (m *machine) completion(p *mtxn, amount int64) *mtxn {
	m.refresh()
	healthy := m.healthy()
	total := m.authorized(p)
	allowed := (p.Status == sterad.StatusApproved || p.Status == sterad.StatusStoodIn) && m.completedBy(p) == nil &&
		amount*100 <= total*115 && !m.beingVoided(p) && !m.linkedInProgress(p, sterad.OpIncremental)
	t, err := m.submit(sterad.Request{Op: "completion", Original: p.ID, Amount: fmt.Sprint(amount)})
	if err != nil {
		m.step("completion ¥%d of %s → refused: %s", amount, p.ID, sterad.ErrorCode(err))
		m.refresh() // the forwarder may have settled the pre-authorization meanwhile
		allowed = allowed && (p.Status == sterad.StatusApproved || p.Status == sterad.StatusStoodIn) && !m.beingVoided(p)
		m.expect(!allowed, "a completion of ¥%d of %s (%s, authorized ¥%d) was refused: %v", amount, p.ID, p.Status, total, err)
		return nil
	}
	x := &mtxn{ID: t.ID, Op: sterad.OpCompletion, Card: p.Card, Amount: amount, Orig: p, Status: t.Status, Batch: t.Batch}
	m.add(x)
	m.step("completion ¥%d of %s → %s %s", amount, p.ID, t.ID, t.Status)
	m.expect(allowed, "%s: a completion of ¥%d of %s (%s, authorized ¥%d, completed by %v) was accepted", t.ID, amount, p.ID, p.Status, total, m.completedBy(p))
	if allowed && healthy && p.Status == sterad.StatusApproved {
		m.expect(t.Status == sterad.StatusApproved || timedOut(t), "%s: a completion on a healthy link ended %s", t.ID, t.Status)
	}
	return x
}

// left is what the model says can still be refunded of debit d: what was
// charged less the refunds that are live. It never reads sterad's own
// refunded amount.
func (m *machine) left(d *mtxn) int64 {
	l := d.Amount
	for _, x := range m.txns {
		if x.Orig == d && x.Op == sterad.OpRefund && live(x.Status) {
			l -= x.Amount
		}
	}
	return l
}

// beingVoided reports whether a void of o has no outcome yet (queued or
// unknown): nothing more may be done to o meanwhile (sterad answers
// void_in_progress).
func (m *machine) beingVoided(o *mtxn) bool {
	for _, x := range m.txns {
		if x.Orig == o && x.Op == sterad.OpVoid && (x.Status == sterad.StatusPending || x.Status == sterad.StatusUnknown) {
			return true
		}
	}
	return false
}

// linkedInProgress reports whether a transaction linked to o (other than
// a void) has no outcome yet: a void of o waits for it.
func (m *machine) linkedInProgress(o *mtxn, ops ...sterad.Op) bool {
	for _, x := range m.txns {
		if x.Orig == o && x.Op != sterad.OpVoid && (len(ops) == 0 || slices.Contains(ops, x.Op)) &&
			(x.Status == sterad.StatusPending || x.Status == sterad.StatusUnknown || x.Status == sterad.StatusStoodIn) {
			return true
		}
	}
	return false
}

// presentCard puts card into r: pushed to the terminal (always in
// card-data-blind mode) or keyed. It says how, and false when the
// harness could not push the card.
func (m *machine) presentCard(r *sterad.Request, card string, atTerminal bool) (how string, ok bool) {
	if !atTerminal && !m.h.blind() {
		r.PAN, r.Expiry = cardByName(card).PAN, cardExpiry
		return "keyed", true
	}
	r.Terminal = frontTID
	m.h.term.ClearCards() // a card pushed for a request refused before its read is not this one
	if err := m.h.term.PushCard(terminal.Card{PAN: sterad.PAN(cardByName(card).PAN), Expiry: cardExpiry}); err != nil {
		m.h.violate("HARNESS: push card: %v", err)
		return "", false
	}
	return "at " + frontTID, true
}

func isDebit(op sterad.Op) bool {
	return op == sterad.OpSale || op == sterad.OpCompletion || op == sterad.OpNoShow
}

func (m *machine) refund(d *mtxn, amount int64) *mtxn {
	m.refresh()
	healthy := m.healthy()
	left := m.left(d)
	charged := d.Status == sterad.StatusApproved || d.Status == sterad.StatusStoodIn
	allowed := isDebit(d.Op) && charged && amount <= left && !m.beingVoided(d)
	t, err := m.submit(sterad.Request{Op: "refund", Original: d.ID, Amount: fmt.Sprint(amount)})
	if err != nil {
		m.step("refund ¥%d of %s → refused: %s", amount, d.ID, sterad.ErrorCode(err))
		// The forwarder runs meanwhile: an advice answered between the
		// model's read and the request changes what is allowed.
		m.refresh()
		stillCharged := d.Status == sterad.StatusApproved || d.Status == sterad.StatusStoodIn
		allowed = allowed && stillCharged && !m.beingVoided(d)
		m.expect(!allowed, "a refund of ¥%d of %s (%s, ¥%d left) was refused: %v", amount, d.ID, d.Status, left, err)
		return nil
	}
	x := &mtxn{ID: t.ID, Op: sterad.OpRefund, Card: d.Card, Amount: amount, Orig: d, Status: t.Status, Batch: t.Batch}
	m.add(x)
	m.step("refund ¥%d of %s → %s %s", amount, d.ID, t.ID, t.Status)
	m.expect(allowed, "%s: a refund of ¥%d of %s %s (%s) was accepted with only ¥%d left to refund", t.ID, amount, d.Op, d.ID, d.Status, left)
	if allowed && healthy && d.Status == sterad.StatusApproved {
		m.expect(t.Status == sterad.StatusApproved || timedOut(t), "%s: a refund on a healthy link ended %s", t.ID, t.Status)
	}
	return x
}

func (m *machine) void(o *mtxn) *mtxn {
	by := m.refresh()
	healthy := m.healthy()
	ctx, cancel := m.h.ctx()
	open, err := m.h.gw().OpenBatch(ctx)
	cancel()
	if err != nil {
		m.h.violate("HARNESS: open batch: %v", err)
		return nil
	}
	voidable := o.Status == sterad.StatusApproved && o.Op != sterad.OpIncremental && o.Op != sterad.OpCardCheck &&
		!(o.Op == sterad.OpPreauth && m.completedBy(o) != nil) &&
		(o.Op == sterad.OpPreauth || by[o.ID] != nil && by[o.ID].Batch == open.Number)
	for _, x := range m.txns {
		if x.Orig == o && x.Op == sterad.OpVoid && live(x.Status) {
			voidable = false // already being voided, or voided
		}
	}
	t, err := m.submit(sterad.Request{Op: "void", Original: o.ID})
	if err != nil {
		m.step("void of %s → refused: %s", o.ID, sterad.ErrorCode(err))
		// A void of a refunded charge may be refused: that is one way
		// of keeping "a voided transaction has no live refund".
		m.refresh() // the forwarder may have settled o or its links meanwhile
		if voidable && o.Status == sterad.StatusApproved && m.left(o) == o.Amount && !m.linkedInProgress(o) {
			m.expect(!healthy, "a void of %s %s (approved, open batch) was refused on a healthy link: %v", o.Op, o.ID, err)
		}
		return nil
	}
	x := &mtxn{ID: t.ID, Op: sterad.OpVoid, Card: o.Card, Amount: o.Amount, Orig: o, Status: t.Status, Batch: t.Batch}
	m.add(x)
	m.step("void of %s → %s %s", o.ID, t.ID, t.Status)
	m.expect(voidable, "%s: a void of %s %s (%s) was accepted", t.ID, o.Op, o.ID, o.Status)
	if voidable && healthy {
		m.expect(t.Status == sterad.StatusApproved || timedOut(t), "%s: a void on a healthy link ended %s", t.ID, t.Status)
	}
	return x
}

func (m *machine) cardCheck(card string) *mtxn {
	healthy := m.healthy()
	m.n++
	ref := fmt.Sprintf("RES%04d", m.n)
	r := sterad.Request{Op: "cardcheck", PAN: cardByName(card).PAN, Expiry: cardExpiry, Reference: ref,
		CheckIn: m.today(), CheckOut: m.inDays(1)}
	if m.h.blind() {
		// Keyed at the terminal, which encrypts it.
		r.PAN, r.Expiry, r.Terminal = "", "", frontTID
		m.h.term.ClearCards() // a card pushed for a request refused before its read is not this one
		if err := m.h.term.PushCard(terminal.Card{PAN: sterad.PAN(cardByName(card).PAN), Expiry: cardExpiry, Entry: string(sterad.EntryKeyed)}); err != nil {
			m.h.violate("HARNESS: push card: %v", err)
			return nil
		}
	}
	t, err := m.submit(r)
	if err != nil {
		m.step("card check %s for %s → refused: %s", card, ref, sterad.ErrorCode(err))
		m.expect(!healthy, "a card check was refused on a healthy link: %v", err)
		return nil
	}
	x := &mtxn{ID: t.ID, Op: sterad.OpCardCheck, Card: card, Ref: ref, Status: t.Status}
	m.add(x)
	m.refs = append(m.refs, ref)
	m.step("card check %s for %s → %s %s", card, ref, t.ID, t.Status)
	if healthy {
		m.expect(asPredicted(t, card), "%s: a card check on %s on a healthy link ended %s, want %s", t.ID, card, t.Status, predicted(card))
	}
	return x
}

// vaulted is the model's account of the guarantee cards kept: a
// reservation whose card check was approved, not released by the hotel,
// not charged as a no-show.
func (m *machine) vaulted(ref string) bool {
	if !m.guaranteed(ref) {
		return false
	}
	for _, x := range m.txns {
		if x.Ref == ref && x.Op == sterad.OpNoShow && (x.Status == sterad.StatusApproved || x.Status == sterad.StatusVoided) {
			// Charged: the card is destroyed, and a void of the charge
			// does not bring it back.
			return false
		}
	}
	return true
}

// guaranteed is what a no-show by reference can charge: a reservation
// whose card check was approved and that the hotel has not released. Its
// card may be gone (vaulted), but the card check also obtained a token
// (the test acquirer issues one for every approved card check with a
// reference), and the token stays with the reservation until it is
// released: after a voided charge it charges the reservation again
// (docs/decisions.md, "A token belongs to its reservation and dies with
// it"). Whether a charge is already live is noShow's to judge.
func (m *machine) guaranteed(ref string) bool {
	if m.freed[ref] {
		return false
	}
	for _, x := range m.txns {
		if x.Ref == ref && x.Op == sterad.OpCardCheck && x.Status == sterad.StatusApproved {
			return true
		}
	}
	return false
}

func (m *machine) cardOfRef(ref string) string {
	for _, x := range m.txns {
		if x.Ref == ref && x.Op == sterad.OpCardCheck {
			return x.Card
		}
	}
	return ""
}

func (m *machine) noShow(ref string, amount int64) *mtxn {
	m.refresh()
	healthy := m.healthy()
	kept := m.guaranteed(ref) // by its card, or after a voided charge by its token
	charged := false
	for _, x := range m.txns {
		if x.Ref == ref && x.Op == sterad.OpNoShow && live(x.Status) {
			charged = true
		}
	}
	t, err := m.submit(sterad.Request{Op: "noshow", Reference: ref, Amount: fmt.Sprint(amount), CheckIn: m.today(), CheckOut: m.inDays(1)})
	if err != nil {
		m.step("no-show ¥%d of %s → refused: %s", amount, ref, sterad.ErrorCode(err))
		m.expect(!kept || charged, "a no-show of %s (card or token kept, not charged) was refused: %v", ref, err)
		return nil
	}
	card := m.cardOfRef(ref)
	x := &mtxn{ID: t.ID, Op: sterad.OpNoShow, Card: card, Amount: amount, Ref: ref, Status: t.Status, Batch: t.Batch}
	m.add(x)
	m.step("no-show ¥%d of %s → %s %s", amount, ref, t.ID, t.Status)
	m.expect(kept && !charged, "%s: a no-show of %s was accepted (card or token kept: %v, already charged: %v)", t.ID, ref, kept, charged)
	if kept && healthy && card != "" {
		m.expect(asPredicted(t, card), "%s: a no-show on %s on a healthy link ended %s", t.ID, card, t.Status)
	}
	return x
}

func (m *machine) release(ref string) {
	m.refresh()
	// A charged reservation keeps its token until it is released.
	kept := m.guaranteed(ref)
	ctx, cancel := m.h.ctx()
	defer cancel()
	_, err := m.h.gw().ReleaseVault(ctx, ref)
	m.step("release %s → %v", ref, errString(err))
	m.expect(kept == (err == nil), "release of %s: card or token kept per the model: %v, sterad: %v", ref, kept, err)
	if err == nil {
		m.freed[ref] = true
	}
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return "refused: " + sterad.ErrorCode(err)
}

func (m *machine) outage(on bool) {
	if err := m.h.host.SetOutage(on); err != nil {
		m.h.violate("HARNESS: outage: %v", err)
	}
	var err error
	if on {
		err = m.h.waitOffline()
	} else {
		err = m.h.waitOnline()
	}
	if err != nil {
		m.h.violate("HARNESS: link after outage %v: %v", on, err)
	}
	m.step("outage %v", on)
}

func (m *machine) delay(ms int) {
	m.h.host.SetDelay(time.Duration(ms) * time.Millisecond)
	m.step("host delay %d ms (acquirer timeout %s)", ms, acquirerTimeout)
}

func (m *machine) drop(n int) {
	m.h.host.Drop(n)
	m.step("host drops the next %d answer(s)", n)
}

func (m *machine) closeBatch() {
	healthy := m.healthy()
	ctx, cancel := m.h.ctx()
	defer cancel()
	b, err := m.h.gw().CloseBatch(ctx)
	n := 0
	if b != nil {
		n = b.Number
	}
	m.step("close batch %06d → %s", n, errString(err))
	if healthy {
		// A loaded machine can make a 0500 miss the acquirer timeout: the
		// close is then left closing and retried, which is right.
		m.expect(err == nil || errors.Is(err, sterad.ErrNoResponse), "a batch close on a healthy link failed: %v", err)
	}
}

// closeRacing closes the batch and runs op while the close waits for the
// host's answer to its 0500.
func (m *machine) closeRacing(what string, op func()) {
	arrived := m.h.inc.acq.hold()
	ctx, cancel := m.h.ctx()
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := m.h.gw().CloseBatch(ctx)
		done <- err
	}()
	var err error
	select {
	case <-arrived:
		m.step("close batch: its 0500 waits for the host; meanwhile %s:", what)
		op()
		m.h.inc.acq.releaseHold()
		err = <-done
	case err = <-done:
		m.h.inc.acq.releaseHold()
		m.step("close batch (nothing to reconcile, or it failed before its 0500) → %s", errString(err))
		op()
	}
	m.step("close batch finished → %s", errString(err))
}

// raceVoidRefund submits a void of d and a refund of it at once.
func (m *machine) raceVoidRefund(d *mtxn, amount int64) {
	m.refresh()
	ctx, cancel := m.h.ctx()
	defer cancel()
	var wg sync.WaitGroup
	var vt, rt *sterad.Transaction
	var verr, rerr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		vt, _, verr = m.h.gw().Submit(ctx, sterad.Request{Op: "void", Original: d.ID, Wait: true})
	}()
	go func() {
		defer wg.Done()
		rt, _, rerr = m.h.gw().Submit(ctx, sterad.Request{Op: "refund", Original: d.ID, Amount: fmt.Sprint(amount), Wait: true})
	}()
	wg.Wait()
	desc := []string{}
	if verr == nil {
		m.add(&mtxn{ID: vt.ID, Op: sterad.OpVoid, Card: d.Card, Amount: d.Amount, Orig: d, Status: vt.Status})
		desc = append(desc, fmt.Sprintf("void %s %s", vt.ID, vt.Status))
	} else {
		desc = append(desc, "void refused: "+sterad.ErrorCode(verr))
	}
	if rerr == nil {
		m.add(&mtxn{ID: rt.ID, Op: sterad.OpRefund, Card: d.Card, Amount: amount, Orig: d, Status: rt.Status})
		desc = append(desc, fmt.Sprintf("refund %s ¥%d %s", rt.ID, amount, rt.Status))
	} else {
		desc = append(desc, "refund refused: "+sterad.ErrorCode(rerr))
	}
	m.step("void and refund ¥%d of %s at once → %s", amount, d.ID, strings.Join(desc, ", "))
}

func (m *machine) restart() {
	if err := m.h.restart(); err != nil {
		m.h.violate("HARNESS: restart: %v", err)
	}
	m.step("restart sterad")
}

// settle is the quiescent point: link back, queue drained, nothing in
// flight; then the host's ledger is compared.
func (m *machine) settle() {
	err := m.h.settle()
	m.step("settle (link back, queue drained) → %s", errString(err))
	if err != nil {
		_, txns, _ := m.h.snapshot()
		var open []string
		for _, t := range txns {
			if t.Step != sterad.StepDone {
				open = append(open, fmt.Sprintf("%s %s %s/%s %q", t.ID, t.Op, t.Status, t.Step, t.Reason))
			}
		}
		m.h.violate("SETTLE: settle: %v; unfinished: %v", err, open)
	}
	m.refresh()
	ctx, cancel := m.h.ctx()
	defer cancel()
	_, txns, err := m.h.snapshot()
	if err != nil {
		m.h.violate("HARNESS: read: %v", err)
		return
	}
	for _, v := range m.h.checkHost(ctx, txns) {
		m.h.violate("%s", v)
	}
}

// check runs the invariants of every step and fails with the model's log.
func (m *machine) check(t interface {
	Fatalf(string, ...any)
}) {
	if m.h.inc == nil || m.h.inc.gw == nil {
		v := m.h.takeViolations()
		m.log("sterad is not running: %s", strings.Join(v, "; "))
		t.Fatalf("invariants broken: HARNESS")
		return
	}
	m.refresh()
	// The vault as the model keeps it.
	ctx, cancel := m.h.ctx()
	vault, err := m.h.gw().Vault(ctx)
	cancel()
	if err != nil {
		m.h.violate("HARNESS: vault: %v", err)
	}
	kept := map[string]bool{}
	for _, e := range vault {
		kept[e.Reference] = true
	}
	for _, ref := range m.refs {
		if kept[ref] != m.vaulted(ref) {
			m.h.violate("VAULT: reservation %s: card kept by sterad: %v, by the model: %v", ref, kept[ref], m.vaulted(ref))
		}
	}
	v := m.h.takeViolations()
	_, txns, err := m.h.snapshot()
	if err == nil {
		// One read of the whole journal: consistent, whatever the
		// background forwarder commits meanwhile.
		v = append(v, checkLocal(txns)...)
	}
	if len(v) > 0 {
		// The details go to the log; the failure names only the broken
		// rules, so that rapid's shrinking recognises the same failure in
		// a shorter sequence.
		m.log("after %d steps, %d violation(s):\n  %s", m.steps, len(v), strings.Join(v, "\n  "))
		t.Fatalf("invariants broken: %s", rules(v))
	}
}

// rules returns the rule tags of violations ("VOIDED: …" → VOIDED),
// sorted and unique.
func rules(v []string) string {
	var r []string
	for _, s := range v {
		tag, _, _ := strings.Cut(s, ":")
		if !slices.Contains(r, tag) {
			r = append(r, tag)
		}
	}
	slices.Sort(r)
	return strings.Join(r, ", ")
}

// ---- rapid actions ----

func (m *machine) KeyedSale(t *rapid.T) {
	m.sale(rapid.SampledFrom(allCards).Draw(t, "card"), rapid.SampledFrom(amounts).Draw(t, "amount"), false)
}

func (m *machine) TerminalSale(t *rapid.T) {
	m.sale(rapid.SampledFrom(allCards).Draw(t, "card"), rapid.SampledFrom(amounts).Draw(t, "amount"), true)
}

func (m *machine) Preauth(t *rapid.T) {
	m.preauth(rapid.SampledFrom(allCards).Draw(t, "card"), rapid.SampledFrom([]int64{10000, 20000}).Draw(t, "amount"),
		rapid.Bool().Draw(t, "at terminal"))
}

func (m *machine) Incremental(t *rapid.T) {
	p := m.pick(t, "preauth", func(x *mtxn) bool { return x.Op == sterad.OpPreauth })
	m.incremental(p, rapid.SampledFrom([]int64{2000, 5000}).Draw(t, "amount"))
}

func (m *machine) Completion(t *rapid.T) {
	p := m.pick(t, "preauth", func(x *mtxn) bool { return x.Op == sterad.OpPreauth })
	total := m.authorized(p)
	m.completion(p, rapid.SampledFrom([]int64{total, total - 1000, total + total/10, total * 2}).Draw(t, "amount"))
}

func (m *machine) Refund(t *rapid.T) {
	d := m.pick(t, "debit", func(x *mtxn) bool { return isDebit(x.Op) })
	m.refund(d, m.refundAmount(t, d))
}

func (m *machine) refundAmount(t *rapid.T, d *mtxn) int64 {
	choices := []int64{1000, 3000, d.Amount}
	if l := m.left(d); l > 0 {
		choices = append(choices, l)
	}
	return rapid.SampledFrom(choices).Draw(t, "amount")
}

func (m *machine) Void(t *rapid.T) {
	o := m.pick(t, "voidable", func(x *mtxn) bool { return x.Op != sterad.OpVoid && x.Op != sterad.OpCardCheck })
	m.void(o)
}

func (m *machine) CardCheck(t *rapid.T) {
	m.cardCheck(rapid.SampledFrom(allCards).Draw(t, "card"))
}

func (m *machine) NoShow(t *rapid.T) {
	if len(m.refs) == 0 {
		t.Skip("no reservation")
	}
	m.noShow(rapid.SampledFrom(m.refs).Draw(t, "reservation"), 15000)
}

func (m *machine) Release(t *rapid.T) {
	if len(m.refs) == 0 {
		t.Skip("no reservation")
	}
	m.release(rapid.SampledFrom(m.refs).Draw(t, "reservation"))
}

func (m *machine) Outage(t *rapid.T) {
	m.outage(!m.h.host.Controls().Outage)
}

func (m *machine) Delay(t *rapid.T) {
	m.delay(rapid.SampledFrom([]int{0, 100, 600}).Draw(t, "ms"))
}

func (m *machine) Drop(t *rapid.T) {
	m.drop(rapid.IntRange(1, 2).Draw(t, "answers"))
}

func (m *machine) CloseBatch(t *rapid.T) {
	m.closeBatch()
}

func (m *machine) CloseBatchRacing(t *rapid.T) {
	switch rapid.SampledFrom([]string{"refund", "void", "sale"}).Draw(t, "racing op") {
	case "refund":
		d := m.pick(t, "debit", func(x *mtxn) bool { return isDebit(x.Op) })
		amount := m.refundAmount(t, d)
		m.closeRacing("a refund", func() { m.refund(d, amount) })
	case "void":
		o := m.pick(t, "voidable", func(x *mtxn) bool { return x.Op != sterad.OpVoid && x.Op != sterad.OpCardCheck })
		m.closeRacing("a void", func() { m.void(o) })
	default:
		card, amount := rapid.SampledFrom(goodCards).Draw(t, "card"), rapid.SampledFrom(amounts).Draw(t, "amount")
		m.closeRacing("a sale", func() { m.sale(card, amount, false) })
	}
}

func (m *machine) RaceVoidRefund(t *rapid.T) {
	d := m.pick(t, "debit", func(x *mtxn) bool { return isDebit(x.Op) })
	m.raceVoidRefund(d, m.refundAmount(t, d))
}

func (m *machine) Restart(t *rapid.T) {
	m.restart()
}

func (m *machine) Settle(t *rapid.T) {
	m.settle()
}

func (m *machine) Check(t *rapid.T) { m.check(t) }

// ---- the tests ----

// budget sets rapid's budget from -model.checks and -model.steps unless
// -rapid.checks / -rapid.steps were given.
func budget(t *testing.T) {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	checks := *modelChecks
	if testing.Short() {
		checks = 1 * 5 // rapid divides by 5 under -short
	}
	if !set["rapid.checks"] {
		flag.Set("rapid.checks", fmt.Sprint(checks))
	}
	if !set["rapid.steps"] {
		flag.Set("rapid.steps", fmt.Sprint(*modelSteps))
	}
	if !set["rapid.seed"] {
		flag.Set("rapid.seed", fmt.Sprint(uint64(time.Now().UnixNano())|1))
	}
	t.Logf("model: rapid.checks=%s rapid.steps=%s rapid.seed=%s", flag.Lookup("rapid.checks").Value, flag.Lookup("rapid.steps").Value, flag.Lookup("rapid.seed").Value)
	if !set["rapid.shrinktime"] {
		flag.Set("rapid.shrinktime", "15s") // make crashtest gives it longer
	}
	if !set["rapid.nofailfile"] {
		flag.Set("rapid.nofailfile", "true")
	}
}

// runModel is one rapid property: a fresh sterad, host and terminal, a
// random sequence of actions with the invariants after each, and a final
// settle with the host comparison.
func runModel(t *testing.T, allowed []string) {
	budget(t)
	var runs, steps int
	// The first sequence that broke an invariant, as it ran: rapid shows
	// only its last attempt, which for a failure that depends on timing
	// may not fail again.
	var first []string
	start := time.Now()
	t.Cleanup(func() {
		if t.Failed() && len(first) > 0 {
			t.Logf("the first failing sequence:\n%s", strings.Join(first, "\n"))
		}
		t.Logf("model: %d sequence(s), %d steps run in %s (reproduce with -rapid.seed=%s)", runs, steps, time.Since(start).Round(time.Millisecond), flag.Lookup("rapid.seed").Value)
	})
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp("", "sterad-model-")
		if err != nil {
			rt.Fatalf("temp dir: %v", err)
		}
		defer removeAll(dir)
		h, err := newHarness(dir)
		if err != nil {
			rt.Fatalf("harness: %v", err)
		}
		defer h.close()
		var trace []string
		m := newMachine(h, func(format string, args ...any) {
			trace = append(trace, fmt.Sprintf(format, args...))
			rt.Logf(format, args...)
		})
		defer func() {
			if rt.Failed() && first == nil {
				first = trace
			}
		}()
		runs++
		defer func() { steps += m.steps }()
		actions := rapid.StateMachineActions(m)
		for name := range actions {
			if name != "" && (allowed != nil && !slices.Contains(allowed, name) ||
				allowed == nil && slices.Contains(strings.Split(*modelWithout, ","), name)) {
				delete(actions, name)
			}
		}
		rt.Repeat(actions)
		m.settle()
		m.check(rt)
	})
}

// TestModel drives the real gateway through random sequences of every
// action. The sub-tests restrict the actions to reach one defect each
// (issue 9's defects 1–3) quickly; they pass once the flows are fixed.
func TestModel(t *testing.T) {
	t.Run("all", func(t *testing.T) { runModel(t, nil) })
	t.Run("void_after_refund", func(t *testing.T) {
		runModel(t, []string{"KeyedSale", "TerminalSale", "Refund", "Void", "Settle"})
	})
	t.Run("void_refund_race", func(t *testing.T) {
		runModel(t, []string{"KeyedSale", "RaceVoidRefund", "Settle"})
	})
	t.Run("refund_after_declined_advice", func(t *testing.T) {
		runModel(t, []string{"TerminalSale", "Refund", "Outage", "Settle"})
	})
	t.Run("refund_during_close", func(t *testing.T) {
		runModel(t, []string{"KeyedSale", "Refund", "CloseBatchRacing", "Settle"})
	})
}
