package acquirer

import (
	"strings"
	"time"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/protocol"
)

// Response codes (docs/acquirer-protocol.md §6).
const (
	codeApproved     = "00"
	codeCardValid    = "85"
	codeDoNotHonor   = "05"
	codeInvalidTxn   = "12"
	codeInvalidAmt   = "13"
	codeInvalidCard  = "14"
	codeFormat       = "30"
	codeNoFunds      = "51"
	codeExpired      = "54"
	codeNotSignedOn  = "91"
	codeTotalsDiffer = "95"
	codeMalfunction  = "96"
)

// noResponse is the screening result of a card the host never answers.
const noResponse = "no response"

// The test cards of docs/acquirer-protocol.md §7 that do not approve.
var declineTable = map[string]string{
	"4000000000000002": codeDoNotHonor,
	"4000000000009995": codeNoFunds,
	"4000000000000069": codeExpired,
	"4000000000000119": noResponse,
	"4000000000000226": codeMalfunction,
}

// declineByHash is declineTable by panHash: the host screens a card it
// keeps only hashed (a token's) without its number.
var declineByHash = func() map[string]string {
	m := make(map[string]string, len(declineTable))
	for pan, code := range declineTable {
		m[panHash(sterad.PAN(pan))] = code
	}
	return m
}()

// outcome is what the connection does with a request: send resp (a packed
// response), or nothing when silent.
type outcome struct {
	resp   []byte
	code   string // DE 39 of a response packed just now
	silent bool
	dup    bool
}

// decision is the result of one operation: the response (nil when silent)
// and what the request did to the ledger, for the request index.
type decision struct {
	resp    *sterad.HostMessage
	silent  bool
	noStore bool // a format error: not processed, so not remembered
	action  string
	txn     int64
	auth    int64
	prev    string
}

// process answers one request of a signed-on connection. ferr is the
// field-level error protocol.FromISO returned with req, if any.
func (s *state) process(req *sterad.HostMessage, ferr error, now time.Time) outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ferr != nil {
		s.log.Error("format error in a request: gateway bug", "mti", req.MTI, "terminal", req.TerminalID, "stan", int(req.STAN), "err", ferr)
		return s.pack(reply(req, codeFormat))
	}
	if d := s.required(req); d != nil {
		return s.pack(d.resp)
	}
	today := sterad.DateOf(now.In(s.loc))
	entry := &reqEntry{
		Terminal:    req.TerminalID,
		STAN:        int(req.STAN),
		Transmitted: req.Transmitted,
		MTI:         string(normalize(req.MTI)),
		Orig:        origString(req.Original),
		KSN:         req.KSN,
		Day:         today,
	}
	repeat := req.MTI == sterad.MTIAdviceRepeat || req.MTI == sterad.MTIReversalRepeat
	// A repeat with its original's DE 7 (an advice's DE 7 is the time of
	// the decision) is answered like it on any day: a gateway that was
	// offline overnight must not be charged twice.
	if e, ok := s.reqs[entry.key()]; ok && (e.Day == today || repeat) {
		if e.MTI != entry.MTI {
			s.log.Error("request reuses DE 41, 11 and 7 of another message type: gateway bug",
				"mti", req.MTI, "original_mti", e.MTI, "terminal", req.TerminalID, "stan", int(req.STAN))
			return s.pack(reply(req, codeFormat))
		}
		s.log.Info("duplicate request: answering the original response again", "mti", req.MTI, "terminal", req.TerminalID, "stan", int(req.STAN))
		return outcome{resp: e.Resp, silent: e.Silent, dup: true}
	}
	if repeat {
		if e, ok := s.repeats[entry.repeatKey()]; ok && e.Day == today {
			s.log.Info("repeat answered like its original", "mti", req.MTI, "terminal", req.TerminalID, "stan", int(req.STAN))
			return outcome{resp: e.Resp, silent: e.Silent, dup: true}
		}
	}

	d := s.decide(req, now)
	out := outcome{silent: d.silent}
	if !d.silent {
		out = s.pack(d.resp)
		if out.resp == nil {
			return out
		}
	}
	if d.noStore {
		return out
	}
	entry.Resp, entry.Silent = out.resp, out.silent
	entry.Action, entry.Txn, entry.Auth, entry.Prev = d.action, d.txn, d.auth, d.prev
	s.emit(event{Req: entry})
	return out
}

func (s *state) pack(m *sterad.HostMessage) outcome {
	b, err := protocol.Pack(m)
	if err != nil {
		// Only echoed fields can fail; answer with the bare minimum.
		s.log.Error("cannot pack response", "mti", m.MTI, "err", err)
		b, err = protocol.Pack(&sterad.HostMessage{MTI: m.MTI, STAN: m.STAN, ResponseCode: m.ResponseCode})
		if err != nil {
			return outcome{silent: true}
		}
	}
	return outcome{resp: b, code: m.ResponseCode}
}

func (s *state) decide(req *sterad.HostMessage, now time.Time) decision {
	switch req.MTI {
	case sterad.MTIAuthorization:
		return s.authorize(req, now)
	case sterad.MTIFinancial:
		return s.financial(req, now)
	case sterad.MTIAdvice, sterad.MTIAdviceRepeat:
		if req.StandIn {
			return s.standIn(req, now)
		}
		return s.completion(req, now)
	case sterad.MTIBatchUpload:
		return s.upload(req, now)
	case sterad.MTIVoid:
		return s.void(req)
	case sterad.MTIReversal, sterad.MTIReversalRepeat:
		return s.reverse(req)
	case sterad.MTIReconciliation:
		return s.reconcile(req, now)
	}
	return s.formatError(req, 0, "not a request of the interface")
}

// normalize maps a repeat MTI to its original (0221 → 0220, 0421 → 0420).
func normalize(m sterad.MTI) sterad.MTI {
	switch m {
	case sterad.MTIAdviceRepeat:
		return sterad.MTIAdvice
	case sterad.MTIReversalRepeat:
		return sterad.MTIReversal
	}
	return m
}

func origString(o *sterad.OriginalData) string {
	if o == nil {
		return ""
	}
	return string(normalize(o.MTI)) + o.STAN.String() + o.Transmitted.UTC().Format("0102150405")
}

// reply echoes DE 3, 4, 7, 11, 41 and 49 of req and sets DE 39.
func reply(req *sterad.HostMessage, code string) *sterad.HostMessage {
	return &sterad.HostMessage{
		MTI:          req.MTI.Response(),
		Processing:   req.Processing,
		HasAmount:    req.HasAmount,
		Amount:       req.Amount,
		Currency:     req.Currency,
		Transmitted:  req.Transmitted,
		STAN:         req.STAN,
		TerminalID:   req.TerminalID,
		ResponseCode: code,
	}
}

func (s *state) formatError(req *sterad.HostMessage, de int, why string) decision {
	s.log.Error("request rejected with a format error: gateway bug", "mti", req.MTI, "terminal", req.TerminalID, "stan", int(req.STAN), "de", de, "reason", why)
	return decision{resp: reply(req, codeFormat), noStore: true}
}

func decline(req *sterad.HostMessage, code string) decision {
	if code == noResponse {
		return decision{silent: true, action: actionCreate}
	}
	return decision{resp: reply(req, code), action: actionCreate}
}

// required checks the fields every request of its type needs
// (docs/acquirer-protocol.md#fields); operations check their own extras.
func (s *state) required(req *sterad.HostMessage) *decision {
	miss := func(de int, why string) *decision {
		d := s.formatError(req, de, why)
		return &d
	}
	switch {
	case req.Transmitted.IsZero():
		return miss(7, "missing")
	case req.STAN == 0:
		return miss(11, "missing")
	case req.TerminalID == "":
		return miss(41, "missing")
	}
	switch req.MTI {
	case sterad.MTIAuthorization, sterad.MTIFinancial, sterad.MTIAdvice, sterad.MTIAdviceRepeat:
		switch {
		case req.Processing == "":
			return miss(3, "missing")
		case req.Entry == "":
			return miss(22, "missing")
		case req.Condition == "":
			return miss(25, "missing")
		}
	case sterad.MTIBatchUpload, sterad.MTIVoid, sterad.MTIReversal, sterad.MTIReversalRepeat:
		if req.Processing == "" {
			return miss(3, "missing")
		}
	}
	switch req.MTI {
	case sterad.MTIAuthorization, sterad.MTIFinancial, sterad.MTIAdvice, sterad.MTIAdviceRepeat,
		sterad.MTIBatchUpload, sterad.MTIVoid, sterad.MTIReversal, sterad.MTIReversalRepeat:
		if !req.HasAmount {
			return miss(4, "missing")
		}
	}
	if c := req.MTI[1]; c >= '2' && c <= '5' && req.Batch == 0 {
		return miss(60, "missing")
	}
	if carriesBlock(req) && !blockAllowed(req) {
		return miss(48, "tags KS and EC are for card-present requests: linked messages carry no card data")
	}
	return nil
}

// card is the card a request carries, in the forms the host keeps.
type card struct {
	pan    sterad.PAN
	expiry sterad.Expiry
	masked string
	hash   string
}

// requiredCard returns the card of a request that must carry one (DE 2 +
// 14, DE 35, or DE 48 KS + EC), or the answer when it does not: a format
// error, or 81 for an encrypted card the host cannot use.
func (s *state) requiredCard(req *sterad.HostMessage) (*card, *decision) {
	c, f := s.cardOf(req)
	if f == nil && c == nil {
		f = &cardFault{de: 2, why: "card data (DE 2 + 14, DE 35 or DE 48 KS + EC) missing"}
	}
	if f != nil {
		d := s.refuse(req, f)
		return nil, &d
	}
	return c, nil
}

// cardOf reads the card of DE 2 + 14, DE 35, or the encrypted card of
// DE 48 KS + EC. It returns nil when the request carries none, and a fault
// when what it carries is incomplete or cannot be decrypted.
func (s *state) cardOf(req *sterad.HostMessage) (*card, *cardFault) {
	if carriesBlock(req) {
		return s.decryptCard(req)
	}
	c, de, why := clearCard(req)
	if de != 0 {
		return nil, &cardFault{de: de, why: why}
	}
	return c, nil
}

// clearCard reads the card of DE 2 + 14 or DE 35 (version 1).
func clearCard(req *sterad.HostMessage) (c *card, de int, why string) {
	switch {
	case req.PAN != "":
		exp := req.Expiry
		if exp.IsZero() {
			if len(req.Track2) == 0 {
				return nil, 14, "missing with DE 2"
			}
			_, exp, de = parseTrack2(req.Track2)
			if de != 0 {
				return nil, de, "not track 2 equivalent data"
			}
		}
		return newCard(req.PAN, exp), 0, ""
	case len(req.Track2) > 0:
		pan, exp, de := parseTrack2(req.Track2)
		if de != 0 {
			return nil, de, "not track 2 equivalent data"
		}
		return newCard(pan, exp), 0, ""
	}
	return nil, 0, ""
}

func newCard(pan sterad.PAN, exp sterad.Expiry) *card {
	return &card{pan: pan, expiry: exp, masked: pan.Masked(), hash: panHash(pan)}
}

// parseTrack2 reads the PAN and expiry of track 2 equivalent data
// (PAN, separator '=' or 'D', YYMM, …).
func parseTrack2(t2 sterad.Sensitive) (sterad.PAN, sterad.Expiry, int) {
	s := string(t2)
	i := strings.IndexAny(s, "=D")
	if i < 1 || len(s) < i+5 {
		return "", sterad.Expiry{}, 35
	}
	exp, err := sterad.ParseExpiry(s[i+1 : i+5])
	if err != nil {
		return "", sterad.Expiry{}, 35
	}
	return sterad.PAN(s[:i]), exp, 0
}

// screen applies docs/acquirer-protocol.md §7 in this order: Luhn (14), amount
// (13), the decline table, expiry at `at` (54). c may be nil (a request
// that refers to an earlier card): then only the amount is checked.
// It returns "" to approve.
//
// A card on file (a token's) has no number: the decline table is looked up
// by its hash, and its expiry is checked when known.
func (s *state) screen(req *sterad.HostMessage, c *card, at time.Time) string {
	if c != nil && c.pan != "" && sterad.ValidatePAN(c.pan.Reveal()) != nil {
		return codeInvalidCard
	}
	if req.Amount.Value.GreaterThanOrEqual(sterad.MaxAmount) {
		return codeInvalidAmt
	}
	if c == nil {
		return ""
	}
	if code, ok := declineByHash[c.hash]; ok {
		return code
	}
	if !c.expiry.IsZero() && c.expiry.Expired(at.In(s.loc)) {
		return codeExpired
	}
	return ""
}

// giveToken sets DE 48 TK on an approval of a request that asked with TR=1
// (docs/acquirer-protocol.md §8): a new token for its card, valid for its merchant.
func (s *state) giveToken(req, resp *sterad.HostMessage, seq uint64) {
	if req.WantToken {
		resp.Token = s.token(seq)
	}
}

// approval is an approved response with fresh DE 37 and 38.
func (s *state) approval(req *sterad.HostMessage, code string, now time.Time, seq uint64) *sterad.HostMessage {
	r := reply(req, code)
	r.RRN = s.rrn(now, seq)
	r.AuthCode = authCode(seq)
	return r
}

func (s *state) authorize(req *sterad.HostMessage, now time.Time) decision {
	if req.Processing != sterad.ProcPurchase {
		return s.formatError(req, 3, "authorizations are purchases (000000)")
	}
	switch {
	case req.Condition == sterad.CondVerification:
		return s.cardCheck(req, now)
	case req.Condition == sterad.CondPreauth && req.MerchantInitiated == sterad.MIIncremental:
		return s.incremental(req, now)
	case req.Condition == sterad.CondPreauth:
		return s.preauth(req, now)
	}
	return s.formatError(req, 25, "an authorization is a pre-authorization (06) or a card check (51)")
}

func (s *state) preauth(req *sterad.HostMessage, now time.Time) decision {
	switch {
	case req.Stay == nil:
		return s.formatError(req, 48, "tag LD missing")
	case req.Reference == "":
		return s.formatError(req, 48, "tag RF missing")
	}
	c, bad := s.requiredCard(req)
	if bad != nil {
		return *bad
	}
	if code := s.screen(req, c, now); code != "" {
		return decline(req, code)
	}
	seq := s.next()
	resp := s.approval(req, codeApproved, now, seq)
	resp.TI = s.ti(now, seq)
	s.giveToken(req, resp, seq)
	a := s.newAuth(req, KindPreauth, resp, now)
	a.Masked, a.PANHash, a.Expiry, a.TI = c.masked, c.hash, c.expiry.String(), resp.TI
	s.emit(event{Seq: seq, Auth: a})
	return decision{resp: resp, action: actionCreate, auth: a.ID}
}

func (s *state) incremental(req *sterad.HostMessage, now time.Time) decision {
	if req.TI == "" {
		return s.formatError(req, 48, "tag TI missing")
	}
	c, f := s.cardOf(req)
	if f != nil {
		return s.refuse(req, f)
	}
	p := s.livePreauth(req.TI)
	if p == nil {
		s.log.Warn("incremental authorization for an unknown or finished pre-authorization", "terminal", req.TerminalID, "stan", int(req.STAN))
		return decline(req, codeInvalidTxn)
	}
	if code := s.screen(req, c, now); code != "" {
		return decline(req, code)
	}
	seq := s.next()
	resp := s.approval(req, codeApproved, now, seq)
	resp.TI = p.TI
	s.giveToken(req, resp, seq)
	a := s.newAuth(req, KindIncremental, resp, now)
	a.Masked, a.PANHash, a.Expiry, a.TI, a.Parent = p.Masked, p.PANHash, p.Expiry, p.TI, p.ID
	s.emit(event{Seq: seq, Auth: a})
	return decision{resp: resp, action: actionCreate, auth: a.ID}
}

func (s *state) cardCheck(req *sterad.HostMessage, now time.Time) decision {
	if !req.Amount.IsZero() {
		s.log.Warn("card check with a non-zero amount", "terminal", req.TerminalID, "stan", int(req.STAN))
		return decline(req, codeInvalidAmt)
	}
	c, bad := s.requiredCard(req)
	if bad != nil {
		return *bad
	}
	if code := s.screen(req, c, now); code != "" {
		return decline(req, code)
	}
	seq := s.next()
	resp := s.approval(req, codeCardValid, now, seq)
	s.giveToken(req, resp, seq)
	a := s.newAuth(req, KindCardCheck, resp, now)
	a.Masked, a.PANHash, a.Expiry, a.Token = c.masked, c.hash, c.expiry.String(), resp.Token
	s.emit(event{Seq: seq, Auth: a})
	return decision{resp: resp, action: actionCreate, auth: a.ID}
}

func (s *state) newAuth(req *sterad.HostMessage, kind string, resp *sterad.HostMessage, now time.Time) *auth {
	return &auth{
		ID:          int64(len(s.auths) + 1),
		Kind:        kind,
		Terminal:    req.TerminalID,
		STAN:        int(req.STAN),
		MTI:         string(req.MTI),
		Minor:       req.Amount.Minor(),
		Currency:    req.Amount.Currency.Code,
		RRN:         resp.RRN,
		AuthCode:    resp.AuthCode,
		Token:       resp.Token,
		Merchant:    req.MerchantID,
		Code:        resp.ResponseCode,
		Status:      StatusApproved,
		Reference:   req.Reference,
		Transmitted: req.Transmitted,
		At:          now,
	}
}

// livePreauth returns the approved, not yet completed pre-authorization
// with this TI.
func (s *state) livePreauth(ti string) *auth {
	r, ok := s.byTI[ti]
	if !ok || r.auth == 0 {
		return nil
	}
	a := s.authByID(r.auth)
	if a.Kind != KindPreauth || a.Status != StatusApproved {
		return nil
	}
	return a
}

// openBatch declines a new financial entry into a batch the terminal has
// already closed: DE 60 must be the current open batch.
func (s *state) openBatch(req *sterad.HostMessage) *decision {
	if !s.batchClosed(req.TerminalID, req.Batch) {
		return nil
	}
	s.log.Warn("financial request for a closed batch", "mti", req.MTI, "terminal", req.TerminalID, "stan", int(req.STAN), "batch", req.Batch)
	d := decline(req, codeInvalidTxn)
	return &d
}

func (s *state) financial(req *sterad.HostMessage, now time.Time) decision {
	switch {
	case req.Processing == sterad.ProcRefund:
		return s.refund(req, now)
	case req.Processing != sterad.ProcPurchase:
		return s.formatError(req, 3, "a financial request is a purchase (000000) or a refund (200000)")
	case req.MerchantInitiated == sterad.MINoShow:
		return s.merchantCharge(req, KindNoShow, now)
	case req.MerchantInitiated == miCancelFee:
		return s.merchantCharge(req, KindCancelFee, now)
	case req.MerchantInitiated == miDeposit:
		return s.merchantCharge(req, KindDeposit, now)
	}
	c, bad := s.requiredCard(req)
	if bad != nil {
		return *bad
	}
	if req.Entry == sterad.EntryChip && len(req.ICC) == 0 {
		return s.formatError(req, 55, "missing for a chip sale")
	}
	if d := s.openBatch(req); d != nil {
		return *d
	}
	if code := s.screen(req, c, now); code != "" {
		return decline(req, code)
	}
	return s.charge(req, KindSale, c, now)
}

// merchantCharge is a charge of a guaranteed reservation, card not
// present: a no-show (MI=NS), a late-cancellation fee (MI=CX) or an
// advance deposit (MI=DP), to the card (DE 2 + 14) or to its token (DE 48
// TK with DE 22 = 102).
func (s *state) merchantCharge(req *sterad.HostMessage, kind string, now time.Time) decision {
	switch {
	case req.Stay == nil:
		return s.formatError(req, 48, "tag LD missing")
	case req.Reference == "":
		return s.formatError(req, 48, "tag RF missing")
	}
	c, f := s.cardOf(req)
	switch {
	case f != nil:
		return s.refuse(req, f)
	case c == nil && req.Token == "":
		return s.formatError(req, 2, "card data (DE 2 + 14) or tag TK missing")
	case c == nil && req.Entry != sterad.EntryToken:
		return s.formatError(req, 22, "a charge to a token (tag TK) is DE 22 = 102")
	}
	if d := s.openBatch(req); d != nil {
		return *d
	}
	if c == nil {
		var code string
		if c, code = s.tokenCard(req); code != "" {
			return decline(req, code)
		}
	}
	if code := s.screen(req, c, now); code != "" {
		return decline(req, code)
	}
	return s.charge(req, kind, c, now)
}

func (s *state) refund(req *sterad.HostMessage, now time.Time) decision {
	c, f := s.cardOf(req)
	if f != nil {
		return s.refuse(req, f)
	}
	if c == nil && req.TI == "" {
		return s.formatError(req, 2, "a refund needs card data or the TI of the original")
	}
	if d := s.openBatch(req); d != nil {
		return *d
	}
	if req.TI != "" {
		orig := s.refundable(req.TI)
		if orig == nil {
			s.log.Warn("refund of an unknown transaction", "terminal", req.TerminalID, "stan", int(req.STAN))
			return decline(req, codeInvalidTxn)
		}
		if c == nil {
			if code := s.screen(req, nil, now); code != "" {
				return decline(req, code)
			}
			return s.charge(req, KindRefund, onFile(orig.Masked, orig.PANHash, orig.Expiry), now)
		}
	}
	if code := s.screen(req, c, now); code != "" {
		return decline(req, code)
	}
	return s.charge(req, KindRefund, c, now)
}

// refundable returns the counted debit a TI names: a sale, no-show,
// stand-in or the completion of a pre-authorization.
func (s *state) refundable(ti string) *txn {
	t := s.charged(ti)
	if t == nil || t.Status != StatusApproved || t.credit() {
		return nil
	}
	return t
}

// charged returns the financial entry a TI names, whatever its status: the
// transaction, or the completion of the pre-authorization.
func (s *state) charged(ti string) *txn {
	r, ok := s.byTI[ti]
	switch {
	case !ok:
		return nil
	case r.txn != 0:
		return s.txnByID(r.txn)
	case s.authByID(r.auth).completion != 0:
		return s.txnByID(s.authByID(r.auth).completion)
	}
	return nil
}

// charge approves a new financial entry on card c.
func (s *state) charge(req *sterad.HostMessage, kind string, c *card, now time.Time) decision {
	seq := s.next()
	resp := s.approval(req, codeApproved, now, seq)
	resp.TI = s.ti(now, seq)
	s.giveToken(req, resp, seq)
	t := s.newTxn(req, kind, c, resp, now)
	s.emit(event{Seq: seq, Txn: t})
	return decision{resp: resp, action: actionCreate, txn: t.ID}
}

func (s *state) newTxn(req *sterad.HostMessage, kind string, c *card, resp *sterad.HostMessage, now time.Time) *txn {
	status := StatusApproved
	if resp.ResponseCode != codeApproved {
		status = StatusDeclinedAdvice
	}
	return &txn{
		ID:          int64(len(s.txns) + 1),
		Kind:        kind,
		Terminal:    req.TerminalID,
		Batch:       req.Batch,
		STAN:        int(req.STAN),
		MTI:         string(normalize(req.MTI)),
		Minor:       req.Amount.Minor(),
		Currency:    req.Amount.Currency.Code,
		Masked:      c.masked,
		PANHash:     c.hash,
		Expiry:      c.expiry.String(),
		RRN:         resp.RRN,
		AuthCode:    resp.AuthCode,
		TI:          resp.TI,
		Token:       resp.Token,
		Merchant:    req.MerchantID,
		Code:        resp.ResponseCode,
		Status:      status,
		Reference:   req.Reference,
		Transmitted: req.Transmitted,
		At:          now,
	}
}

func (s *state) completion(req *sterad.HostMessage, now time.Time) decision {
	switch {
	case req.TI == "":
		return s.formatError(req, 48, "tag TI missing")
	case req.AuthCode == "":
		return s.formatError(req, 38, "missing")
	case req.Original == nil:
		return s.formatError(req, 90, "missing")
	}
	if d := s.openBatch(req); d != nil {
		return *d
	}
	p := s.livePreauth(req.TI)
	if p == nil {
		s.log.Warn("completion of an unknown or finished pre-authorization", "terminal", req.TerminalID, "stan", int(req.STAN))
		return decline(req, codeInvalidTxn)
	}
	if code := s.screen(req, nil, now); code != "" {
		return decline(req, code)
	}
	seq := s.next()
	resp := reply(req, codeApproved)
	resp.RRN, resp.AuthCode, resp.TI = s.rrn(now, seq), req.AuthCode, p.TI
	t := s.newTxn(req, KindCompletion, onFile(p.Masked, p.PANHash, p.Expiry), resp, now)
	t.Preauth = p.ID
	s.emit(event{Seq: seq, Txn: t})
	return decision{resp: resp, action: actionCreate, txn: t.ID}
}

// standIn records the gateway's report of an offline approval. A card the
// host would have declined is answered with its decline code and not
// charged (a card the host never answers is answered 05: an advice must be
// acknowledged); the entry is kept as declined_advice.
func (s *state) standIn(req *sterad.HostMessage, now time.Time) decision {
	if req.Processing != sterad.ProcPurchase {
		return s.formatError(req, 3, "a stand-in advice is a purchase (000000)")
	}
	if req.AuthCode == "" {
		return s.formatError(req, 38, "missing")
	}
	c, bad := s.requiredCard(req)
	if bad != nil {
		return *bad
	}
	if d := s.openBatch(req); d != nil {
		return *d
	}
	// Expiry is judged at the time of the original decision (DE 7).
	code := s.screen(req, c, req.Transmitted)
	if code == noResponse {
		code = codeDoNotHonor
	}
	var seq uint64
	resp := reply(req, codeApproved)
	resp.AuthCode = req.AuthCode // the gateway's local code, echoed
	if code == "" {
		seq = s.next()
		resp.RRN, resp.TI = s.rrn(now, seq), s.ti(now, seq)
	} else {
		s.log.Info("stand-in advice for a card the host declines: accepted, not charged", "terminal", req.TerminalID, "stan", int(req.STAN), "code", code)
		resp.ResponseCode = code
	}
	t := s.newTxn(req, KindStandIn, c, resp, now)
	s.emit(event{Seq: seq, Txn: t})
	return decision{resp: resp, action: actionCreate, txn: t.ID}
}

func (s *state) upload(req *sterad.HostMessage, now time.Time) decision {
	switch {
	case req.PAN == "" && req.Token == "" && req.TI == "":
		return s.formatError(req, 2, "DE 2, tag TI or tag TK missing")
	case req.RRN == "":
		return s.formatError(req, 37, "missing")
	case req.AuthCode == "":
		return s.formatError(req, 38, "missing")
	}
	if s.batchClosed(req.TerminalID, req.Batch) {
		s.log.Warn("batch upload for a closed batch", "terminal", req.TerminalID, "stan", int(req.STAN), "batch", req.Batch)
		return decline(req, codeInvalidTxn)
	}
	u := &upload{
		Terminal:   req.TerminalID,
		Batch:      req.Batch,
		STAN:       int(req.STAN),
		Processing: req.Processing,
		TI:         req.TI,
		Token:      req.Token,
		Minor:      req.Amount.Minor(),
		Currency:   req.Amount.Currency.Code,
		RRN:        req.RRN,
		AuthCode:   req.AuthCode,
		At:         now,
	}
	// The card: DE 2 (version 1), else the token's, else the card of the
	// transaction the TI names.
	hash := ""
	tk, tokenKnown := s.tokens[req.Token]
	switch {
	case req.PAN != "":
		u.Masked, hash = req.PAN.Masked(), panHash(req.PAN)
	case tokenKnown:
		u.Masked, hash = tk.masked, tk.hash
	case req.TI != "":
		if t := s.charged(req.TI); t != nil {
			u.Masked, hash = t.Masked, t.PANHash
		}
	}
	if r, ok := s.byRRN[req.RRN]; ok && r.txn != 0 {
		t := s.txnByID(r.txn)
		u.Matched = t.Terminal == u.Terminal && t.Batch == u.Batch && t.Minor == u.Minor &&
			(hash == "" || hash == t.PANHash) && (req.TI == "" || req.TI == t.TI)
	}
	s.emit(event{Upload: u})
	return decision{resp: reply(req, codeApproved), action: actionCreate}
}

// original finds what a void refers to: by DE 41 and DE 90 (MTI, STAN,
// DE 7), else by DE 37 of the same terminal.
func (s *state) original(req *sterad.HostMessage) ref {
	if e := s.request(req.TerminalID, req.Original); e != nil && e.Action == actionCreate && (e.Txn != 0 || e.Auth != 0) {
		return ref{e.Txn, e.Auth}
	}
	r, ok := s.byRRN[req.RRN]
	switch {
	case !ok:
		return ref{}
	case r.txn != 0 && s.txnByID(r.txn).Terminal == req.TerminalID,
		r.auth != 0 && s.authByID(r.auth).Terminal == req.TerminalID:
		return r
	}
	return ref{}
}

// request returns the answered request DE 90 names, if the host has it.
func (s *state) request(terminal string, o *sterad.OriginalData) *reqEntry {
	e := s.reqs[reqKey{terminal, int(o.STAN), o.Transmitted.Unix()}]
	if e == nil || e.MTI != string(normalize(o.MTI)) {
		return nil
	}
	return e
}

func (s *state) void(req *sterad.HostMessage) decision {
	switch {
	case req.Original == nil:
		return s.formatError(req, 90, "missing")
	case req.ReversalReason != sterad.RRVoid:
		return s.formatError(req, 48, "tag RR must be VD in a void")
	case req.TI == "":
		return s.formatError(req, 48, "tag TI missing")
	case req.RRN == "":
		return s.formatError(req, 37, "missing")
	}
	r := s.original(req)
	invalid := func(why string) decision {
		s.log.Warn("void refused", "reason", why, "terminal", req.TerminalID, "stan", int(req.STAN))
		return decision{resp: reply(req, codeInvalidTxn), action: actionCreate}
	}
	minor := req.Amount.Minor()
	switch {
	case r.txn != 0:
		t := s.txnByID(r.txn)
		switch {
		case t.Minor != minor:
			return invalid("amount differs from the original")
		case s.batchClosed(t.Terminal, t.Batch):
			return invalid("original in a closed batch")
		case t.Status == StatusVoided:
			return decision{resp: reply(req, codeApproved), action: actionCreate}
		case t.Status != StatusApproved:
			return invalid("original is " + t.Status)
		}
		s.emit(event{Status: &statusChange{Txn: t.ID, Status: StatusVoided}})
		return decision{resp: reply(req, codeApproved), action: actionVoid, txn: t.ID, prev: StatusApproved}
	case r.auth != 0:
		a := s.authByID(r.auth)
		switch {
		case a.Minor != minor:
			return invalid("amount differs from the original")
		case a.Status == StatusVoided:
			return decision{resp: reply(req, codeApproved), action: actionCreate}
		case a.Status != StatusApproved:
			return invalid("original is " + a.Status)
		}
		s.emit(event{Status: &statusChange{Auth: a.ID, Status: StatusVoided}})
		return decision{resp: reply(req, codeApproved), action: actionVoid, auth: a.ID, prev: StatusApproved}
	}
	return invalid("original unknown")
}

// reverse undoes the original if the host knows it and it still counts;
// anything else is acknowledged with 00 all the same.
func (s *state) reverse(req *sterad.HostMessage) decision {
	switch {
	case req.Original == nil:
		return s.formatError(req, 90, "missing")
	case req.ReversalReason == "":
		return s.formatError(req, 48, "tag RR missing")
	}
	ok := decision{resp: reply(req, codeApproved)}
	e := s.request(req.TerminalID, req.Original)
	if e == nil {
		s.log.Info("reversal of an unknown request acknowledged", "terminal", req.TerminalID, "stan", int(req.STAN))
		return ok
	}
	if e.Action == actionVoid {
		// Reversing a void reinstates what it voided.
		switch {
		case e.Txn != 0:
			if t := s.txnByID(e.Txn); t.Status == StatusVoided && !s.batchClosed(t.Terminal, t.Batch) {
				s.emit(event{Status: &statusChange{Txn: t.ID, Status: e.Prev}})
			}
		case e.Auth != 0:
			if a := s.authByID(e.Auth); a.Status == StatusVoided {
				s.emit(event{Status: &statusChange{Auth: a.ID, Status: e.Prev}})
			}
		}
		return ok
	}
	switch {
	case e.Txn != 0:
		t := s.txnByID(e.Txn)
		if t.Status != StatusApproved {
			return ok
		}
		if s.batchClosed(t.Terminal, t.Batch) {
			s.log.Warn("reversal of a transaction in a closed batch: acknowledged, batch left as closed", "terminal", req.TerminalID, "stan", int(req.STAN))
			return ok
		}
		s.emit(event{Status: &statusChange{Txn: t.ID, Status: StatusReversed}})
	case e.Auth != 0:
		a := s.authByID(e.Auth)
		if a.Status != StatusApproved {
			return ok
		}
		s.emit(event{Status: &statusChange{Auth: a.ID, Status: StatusReversed}})
	}
	if e.Silent {
		s.log.Info("reversal of a request the host never answered", "terminal", req.TerminalID, "stan", int(req.STAN))
	}
	return ok
}

func (s *state) reconcile(req *sterad.HostMessage, now time.Time) decision {
	if req.Totals == nil {
		return s.formatError(req, 74, "reconciliation totals missing")
	}
	resp := func(code string) decision {
		r := reply(req, code)
		r.Batch = req.Batch
		return decision{resp: r, action: actionCreate}
	}
	gw := *req.Totals
	b := s.batch(req.TerminalID, req.Batch)
	if b.State == BatchClosed {
		if (b.Host != nil && *b.Host == gw) || (b.Gateway != nil && *b.Gateway == gw) {
			return resp(codeApproved)
		}
		s.log.Warn("reconciliation of a closed batch with other totals", "terminal", req.TerminalID, "batch", req.Batch)
		return resp(codeInvalidTxn)
	}
	host := hostTotals(b)
	next := &batch{Terminal: b.Terminal, Number: b.Number, State: BatchOpen, Gateway: &gw}
	switch {
	case req.BatchUpload:
		next.State, next.Host, next.Result, next.ClosedAt = BatchClosed, &host, codeApproved, now
		if host != gw {
			s.log.Info("batch closed after upload with totals that differ", "terminal", req.TerminalID, "batch", req.Batch)
		}
	case s.disagree.Load() || host != gw:
		next.Result = codeTotalsDiffer
	default:
		next.State, next.Host, next.Result, next.ClosedAt = BatchClosed, &host, codeApproved, now
	}
	s.emit(event{Batch: next})
	return resp(next.Result)
}
