// Package device connects sterad to card terminals: the transports that
// carry the SFL/1 byte stream (a serial port, which also covers USB
// CDC-ACM handhelds and pseudo-terminals) and the terminal session that
// implements sterad.Terminal on top of protocol.Link.
//
// A Session owns one terminal. Its Run method is a supervisor: it opens
// the transport, says HELLO, checks that the terminal is the one
// configured, keeps the idle link alive with PING, and on any link failure
// closes the transport and reconnects with backoff (terminal-link.md §3).
// A device missing at start-up is simply retried; the daemon starts
// anyway and the terminal shows as offline.
//
// The gateway drives transactions through the sterad.Terminal methods:
// ReadCard, ShowOutcome, Cancel and Query. One transaction runs at a time
// per terminal. Inbound frames are routed by type and txn_id to the call
// waiting for them; the link handler only persists (CARD, RESULT) and
// enqueues, so a card or a result is journaled before the terminal is told
// it arrived (persist before ACK).
//
// Card data (PAN, track 2, chip data) never reaches a log or an error:
// logs show frame headers only.
package device
