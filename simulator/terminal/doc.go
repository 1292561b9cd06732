// Package terminal is the card-terminal simulator: the terminal side of
// the SFL/1 link (docs: terminal-link.md) on any byte stream (Serve) or on
// a pseudo-terminal symlinked at a path (ListenPTY), with a control API
// (Handler) to choose the cards customers present and to inject line
// faults. `sterad sim terminal` and `sterad serve --simulate` run it; the
// device package's tests and the acceptance tests talk to it.
//
// The link layer is protocol.Link (ACK/NAK, T1/T2, retransmission,
// duplicates); this package is the terminal's session and transaction
// logic on top of it, plus fault injection through LinkOptions.WriteHook
// and Link.WriteRaw. It logs frame headers and transaction events, never
// payloads: CARD carries the PAN, track 2 and chip data.
//
// # Encrypting terminals (P2PE)
//
// By default both kinds announce "p2pe" and encrypt card data themselves
// (terminal-link.md §7), as sterad runs card-data-blind by default: a CARD
// carries masked_pan, brand, p2pe {ksn, data} and, for chip and
// contactless, chip data without the card data tags (5A, 57, 56, 5F20,
// 5F24, 9F1F, 9F20, 9F6B; the simulated chip data never holds them); no
// pan, expiry or track2. The block is the JSON card {"pan","expiry"}
// (swipe adds "track2") under AES DUKPT (package simulator/dukpt): the
// standard's public test BDK, BDK ID 12345678, and the derivation ID
// dukpt.DerivationID(terminal ID), so the test acquirer decrypts with
// dukpt.Decrypt(dukpt.TestBDK(), block). Keyed entry (a card check keyed
// at the terminal) is encrypted the same way. Config.Clear makes a
// terminal in clear instead (no p2pe, the §4 payload), for card_data:
// clear; so do explicit Config.Caps without p2pe.
//
// A KSN must never repeat for a terminal ID: the host answers a KSN it has
// seen with 81. The transaction counter advances for every CARD built (a
// replayed READ_CARD gets the same CARD, with its KSN) and lives in the
// Terminal, so reboot faults keep it. Across restarts of the process:
//
//   - with Config.StateDir, the terminal reserves KSNReserve counters at a
//     time in dukpt-<ID>.counter there (written and synced before a
//     reserved counter is used) and resumes past the reservation; `sterad
//     serve --simulate` keeps it in data_dir/sim beside the test
//     acquirer's state. A counter file it cannot read or write stops the
//     terminal from encrypting: the transaction ends with RESULT error,
//     reason ENCRYPTION_FAULT, and no CARD (so does an exhausted counter);
//   - without one, the counter resumes from the wall clock (not
//     Config.Clock, which may stand still): one counter per KSNTick since
//     KSNEpoch, so a restarted simulator continues past its old KSNs
//     unless it averaged more than 8 cards a second; a terminal created
//     again in the same process resumes past its predecessor's
//     reservation in any case.
//
// # Transactions
//
// READ_CARD gets PROGRESS(PRESENT_CARD, timeout_s 60), or KEY_ENTRY when
// the resolved entry mode is keyed; after the card's delay_ms (default
// Config.PresentDelay) the customer presents the card (CARD), presses
// cancel (RESULT cancelled, reason CUSTOMER_CANCEL) or walks away (nothing
// happens until the gateway's CANCEL). OUTCOME gets PROGRESS(PRINTING) and
// RESULT(done, printed) and records a slip when the terminal has the
// "printer" capability; without it, no PRINTING, no slip, printed false.
// CANCEL before the CARD is accepted (CANCEL_RESP, then RESULT cancelled,
// reason CANCEL_REQUEST); afterwards it is TOO_LATE; for a txn_id the
// terminal does not know, UNKNOWN_TXN.
//
// # Decisions where the spec is silent
//
//   - card_sent means acknowledged. A transaction is card_sent in
//     STATUS_RESP only once the gateway acknowledged the CARD (it persists
//     it before the ACK). If the link fails before, the transaction is back
//     to waiting_card with the card still read: the gateway cancels it
//     (§6), or a replayed READ_CARD sends the same CARD again. CANCEL is
//     TOO_LATE as soon as the CARD is queued. STATUS_RESP and HELLO_RESP
//     are built when they go on the wire, after everything queued before
//     them was acknowledged or lost.
//   - Replays. The same READ_CARD (compared field by field) for a finished
//     transaction gets its stored RESULT again; for the transaction in
//     flight it gets PROGRESS again while waiting for the card, and the
//     same CARD again once the card was read. The same txn_id with another
//     body gets ERROR TXN_ID_REUSED, checked before BUSY. OUTCOME for a
//     finished transaction gets its RESULT again. CANCEL for a cancelled
//     transaction gets CANCEL_RESP accepted and its RESULT again; for a
//     done one, TOO_LATE.
//   - Idle when decided. The result is journaled when it is decided
//     (OUTCOME, CANCEL, customer cancel): STATUS_QUERY answers done and the
//     terminal is no longer busy at once, since the gateway may send the
//     next READ_CARD as soon as it has the RESULT, before the terminal's
//     link has seen the ACK. GET /state shows "outcome" until the RESULT is
//     acknowledged (or lost).
//   - The journal of the last 100 results (JournalSize), the slips, the
//     queued cards and the armed faults survive reboots; the transaction in flight does not (STATUS_QUERY
//     answers unknown). The journal holds no card data; the card read is
//     forgotten when the transaction ends.
//   - OUTCOME for an unknown transaction, or one with no card read, gets
//     ERROR BAD_REQUEST. Frames of the terminal's own direction (CARD,
//     RESULT, PONG, ...) are acknowledged and ignored. Bad JSON, a txn_id
//     missing or over 64 characters, an unknown op, an amount that is not
//     a valid amount in the currency (required except for cardcheck), an
//     unsupported currency (only JPY) or an entry list with no mode the
//     terminal has all get ERROR BAD_REQUEST. HELLO with proto ≠ 1 gets
//     ERROR UNSUPPORTED.
//   - KEY_ENTRY is the prompt whenever the resolved entry mode is keyed
//     (a card check or no-show allowing only keyed, or a keyed card
//     queued), PRESENT_CARD otherwise.
//   - Entry mode: the queued card's entry if the READ_CARD allows it and the
//     terminal has it (a handheld has no swipe), else the first allowed
//     mode the terminal has.
//   - HELLO starts a new session: frames queued but not yet written for the
//     old one are dropped (a CARD among them goes back to waiting_card).
//     A frame already on the wire cannot be recalled: HELLO_RESP follows
//     its ACK or its failure.
//   - Links on a line. If the link layer fails (a frame unacknowledged after
//     the retransmissions) while the stream is fine, the terminal starts a
//     new link on the same stream and waits for HELLO, as on a serial port.
//     Serve returns only when ctx ends, the stream fails, or the cable is
//     pulled.
//
// # Cards
//
// POST /card queues what the customer does at the next READ_CARD (FIFO),
// in clear whatever the terminal (an encrypting one encrypts it when the
// customer presents it):
// {"pan","expiry":"YYMM","entry":"chip|ctls|swipe|keyed",
// "action":"present|cancel|walkaway","delay_ms":N,"track2","brand"}, all
// optional; track2 replaces a swiped card's own track 2 (unchecked), brand
// the brand of the PAN's range (a terminal that disagrees). The PAN
// must be 12 to 19 digits, but the Luhn check is not enforced and expired
// dates are allowed, so the gateway's own checks can be exercised. With
// nothing queued the customer presents Visa 4111111111111111 by chip,
// expiring two years from the clock's now. Swipe carries track 2
// (PAN=YYMM101…); chip and contactless carry a small EMV TLV list in hex
// (9F26 random cryptogram, 9F27, 9F36, 9F02, 5F2A, 9A, 9C).
//
// # Faults
//
// POST /fault {"kind","count","ms"} (count default 1):
//
//   - drop_ack: the ACKs of the next count new data frames are not sent
//     (the frames are delivered); the ACK of their retransmission is. The
//     ACK of a HELLO is never dropped (HELLO is always delivered, so a lost
//     ACK would make a second HELLO_RESP, not a duplicate).
//   - bad_crc: the next count data frames go out with a corrupted CRC on
//     their first transmission; the retransmission is clean.
//   - garbage: a burst of noise (random bytes, stray STX, impossible
//     headers) precedes each of the next count frames written, ACKs
//     included. The noise holds no header a decoder could accept, so a
//     correct gateway counts it and sends no NAK.
//   - truncate: the next count data frames are cut after the header and
//     half the payload on their first transmission, then the terminal
//     writes nothing for 2×T1 (its own LinkOptions.T1): the gateway NAKs
//     once and gets the whole frame again.
//   - silence: for ms (default 7000) input is discarded and nothing is
//     written.
//   - unplug: the stream is closed (under ListenPTY the master is closed,
//     so the gateway's reads hit end of file and its writes EIO, the
//     symlink is removed, and a new pty symlinked after ms, default 1000).
//     Serve returns an *UnplugError; the caller may serve again after Down.
//   - reboot: a new boot_id, the transaction in flight is lost, then as
//     unplug with ms default 500.
//   - no_result: the next count OUTCOMEs are acknowledged and ignored: no
//     PROGRESS, no slip, no RESULT; the transaction stays card_sent (a
//     hung display or printer task), so the gateway's bounded retries and
//     its handling of an outcome never confirmed can be exercised.
//
// Bad input from an encrypting terminal, for its next count CARDs (armed
// only on a terminal with p2pe; one fault per CARD, in this order):
//
//   - clear_pan: pan and expiry (and a swipe's track2) in clear beside the
//     encrypted block: a gateway must refuse the card and drop its data.
//   - bad_ksn: a malformed KSN (cut to 20 hex digits).
//   - bad_data: malformed data (its last hex digit cut: not whole blocks).
//   - undecryptable: well-formed data whose last block is garbled: it
//     decrypts to no card, and the host answers 81.
//   - replay_ksn: the previous CARD's block (KSN and data) again: the
//     host answers 81 for a KSN it has seen. It waits for a CARD to
//     replay when there was none yet.
//
// # Control API
//
//	POST /card     → {"queued": n}
//	POST /fault    → the fault as armed
//	GET  /state    → {"id","kind","model","fw","caps","boot_id",
//	                  "state":"idle|waiting_card|card_sent|outcome",
//	                  "current_txn","link":{frames_sent,...},"connected",
//	                  "port","queued_cards","faults":{drop_ack,bad_crc,garbage,
//	                  truncate,no_result,silent,clear_pan,bad_ksn,bad_data,
//	                  undecryptable,replay_ksn}}
//	GET  /slips    → {"slips":[{"txn_id","op","status","code","auth_code",
//	                  "rrn","amount","currency","masked_pan","brand",
//	                  "entry","lines","printed_at"}]}
//	GET  /healthz  → {"status":"ok"}
//
// Errors are {"error":{"code","message"}}: 400 for bad input, 404, 405.
// "link" sums the link counters over every link since New.
package terminal
