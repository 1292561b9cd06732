// Package acquirer is the test acquirer host: the far end of the acquirer
// host interface (docs/acquirer-protocol.md, version 1.1) that behaves as its
// section 7 says and accepts the encrypted cards of its section 8, with
// a ledger of what it charged and an HTTP control API for tests, demos and
// `sterad sim acquirer`.
//
//	h := acquirer.New(acquirer.Options{Clock: clock, DataDir: dir})
//	go h.ListenAndServe("127.0.0.1:8583")   // or h.Serve(ln)
//	http.ListenAndServe("127.0.0.1:8584", h.Handler())
//	defer h.Close()
//
// # Wire
//
// TCP; each message is a 2-byte big-endian length and an ISO 8583 message
// packed by package protocol. A length over 4096 is discarded (those bytes
// are read and dropped) and the connection carries on. A message that does
// not unpack structurally is logged and skipped; one whose structure is
// sound but a field is not is answered 30, echoing what could be read.
// Many connections, many outstanding requests per connection: each
// connection decides its requests in arrival order and writes each
// response from its own goroutine, so responses may leave out of order.
// A response echoes DE 3, 4, 7, 11, 41 and 49 and adds DE 39; approvals add
// DE 37 (12-digit RRN, unique per host), DE 38 (6 characters) and DE 48 TI
// (15 characters, unique per host); a card check answers 85; an approved
// 0100 or 0200 asked with TR=1 adds DE 48 TK. The response MTI is the request's with the third
// digit plus one and the last digit 0.
//
// # Rules
//
// A connection signs on (0800 DE 70 = 001) before anything else; other
// requests, echo and sign-off included, are answered 91 until then. Every
// request needs DE 7, 11 and 41, and the extras of docs/acquirer-protocol.md §5 for
// its operation (30 otherwise). The host approves everything but
// docs/acquirer-protocol.md §7, checked in this order: Luhn (14), amount of
// ¥10,000,000 or more (13), the decline table (05, 51, 54, no response,
// 96), DE 14 in the past in Options.Location (54). A card the host never
// answers is remembered, so its reversal is acknowledged and nothing is
// charged.
//
//   - 0100 DE 25 = 06: pre-authorization, returns a TI. With DE 48 MI=IA and
//     the TI of a live pre-authorization: incremental, adds to its total
//     (12 when the TI is unknown, completed, voided or reversed).
//   - 0100 DE 25 = 51, DE 4 = 0: card check, 85 (13 when DE 4 is not 0).
//   - 0200: sale (000000), no-show (MI=NS), late-cancellation fee (MI=CX),
//     advance deposit (MI=DP) or refund (200000; 12 when it names an
//     unknown TI). Each approval is a new TI.
//   - Tokens: TR=1 on an approved 0100 or 0200 returns a new token for its
//     card and its DE 42. A no-show, fee or deposit may be charged to it
//     (DE 22 = 102, DE 48 TK, no DE 2; 30 with another DE 22): 14 for a
//     token the host does not know or issued to another merchant, else
//     section 7's rules, the decline table matched by the hash of the
//     card, the expiry kept with the token.
//   - 0220/0221 with TI, DE 38, DE 90: completion of a live
//     pre-authorization (12 otherwise), charged to its card. With SI=1: a
//     stand-in advice, accepted as a debit; for a card the host declines it
//     is answered with that card's code (05 for the card the host never
//     answers, since an advice must be acknowledged) and kept as
//     declined_advice, not charged. Expiry is judged at DE 7, the time of
//     the original decision.
//   - 0400 (RR=VD): void of the original found by DE 41 + DE 90, else by
//     DE 37. 12 when unknown, when DE 4 differs, when the original is
//     reversed or in a closed batch. Voiding a completion makes its
//     pre-authorization live again.
//   - 0420/0421: reversal; the original (found by DE 41 + DE 90, even one
//     whose response was dropped) stops counting, a completion's
//     pre-authorization is live again, an incremental leaves its total.
//     Always 00. Reversing a void reinstates what it voided.
//   - 0320: batch upload, recorded with the batch; 0500: reconciliation of a
//     terminal's batch (DE 41 + DE 60) against the host's totals of
//     approved, non-reversed, non-voided entries: equal → 00 and the batch
//     closes; different (or SetDisagree) → 95; with BU=1 → 00 and the batch
//     closes, both totals kept. A new 0200/0220 or 0320 for a closed batch
//     is answered 12.
//
// # Encrypted cards (docs/acquirer-protocol.md §8)
//
// A card-present request — 0100 pre-authorization and card check, 0200,
// and a stand-in advice — may carry DE 48 KS and EC instead of DE 2, 14
// and 35. The host holds the test BDK (dukpt.TestBDK) and decrypts the
// block (dukpt.Decrypt) into DE 2 + 14 (+ 35 when it has a track 2, which
// must be the same card's), then screens it as above. Answered 81,
// nothing charged: a KSN this DE 41 already used in another request
// answered today or before (the KSNs are journaled), a KSN that is not
// 24 uppercase hex digits or names another BDK ID or a counter no
// terminal uses, data that does not decrypt to exactly a card object. A
// duplicate or repeat is answered from the stored response before any of
// this, so it is never taken for a replay. Answered 30 (and the block
// not used up): KS without EC or the reverse, EC beside DE 2, 14 or 35,
// DE 55 beside EC holding card data (tags 5A, 57, 5F24, 5F20, 56,
// 9F6B), and KS or EC in a linked message (incremental, completion,
// upload, void, reversal), which carries no card data: those are found
// by TI, DE 90 and TK. A 0320 may carry DE 48 TI (and TK) instead of
// DE 2; it matches when its RRN's transaction has that TI.
//
// Duplicates: a request with the DE 41, 11 and 7 of one answered today
// (Options.Location) gets the stored response again and is not processed
// again; with another MTI (repeats normalised) it is a gateway bug: 30,
// logged as an error. A repeat (0221, 0421) is answered like its original:
// on any day when it carries the original's DE 7 (an advice repeated after
// midnight is not charged twice), the same day when its DE 7 differs
// (matched on DE 41, 11 and, for a reversal, DE 90). Requests answered 30
// or 91 are not remembered: they were not processed.
//
// # Controls
//
// SetOutage closes every connection and the listener (clients get
// "connection refused") until it is turned off, then listens again on the
// same address. SetDelay delays every response. Drop(n) processes the
// next n requests (0800s excepted) but sends no response. SetDisagree
// answers 95 to 0500s without BU=1. Handler serves the same over HTTP.
//
// # Persistence
//
// With Options.DataDir every state change is an event in an append-only
// JSON-lines journal (JournalFile) that New replays. Events carry masked
// PANs and a SHA-256 of the PAN, never the number, nor a card block; a
// token is kept as the masked card, its hash, expiry and merchant ID. Events are buffered in
// memory while deciding and written with one write per message (shared by
// concurrent messages) before the response is sent, so a killed host
// remembers everything it answered; fsync runs every Options.SyncInterval,
// not per message. The journal is never compacted.
package acquirer
