// Package device connects sterad to card terminals: the transports that
// carry the SFL/1 byte stream and the terminal session that implements
// sterad.Terminal on top of protocol.Link.
//
// # Transports
//
// An Opener opens the byte stream; the session calls it on every
// connection attempt, so a device that is missing, unplugged or
// re-enumerated is found again by the session's reconnect loop (polling:
// neither the serial ports nor gousb have hotplug here).
//
//   - SerialOpener: a serial port by path. RS-232 for the fixed terminal,
//     a USB CDC-ACM handheld by path (/dev/ttyACM0), or a pseudo-terminal.
//   - SerialByUSB: a CDC-ACM handheld found by USB vendor/product id (and
//     serial number) through go.bug.st/serial's enumerator on every open,
//     so a re-plug under another ttyACM number is found. Info().Path shows
//     the port it found.
//   - USBOpener: a handheld speaking SFL/1 over a vendor-specific USB
//     interface (class 0xff) with one bulk IN and one bulk OUT endpoint,
//     through github.com/google/gousb (cgo and libusb-1.0). The stream
//     (NewBulkStream) runs IN transfers with a timeout in a loop (a timeout
//     is not an error), assumes nothing about how frames fall into packets,
//     turns libusb's no-device errors into a transport error (the session
//     goes offline and reconnects), and is unblocked by Close, which then
//     releases the interface, the device and the libusb context. Built
//     with the nousb tag (no cgo), USBOpener fails with ErrNoUSBSupport
//     and USBSupported is false.
//
// Discover lists the serial ports and USB devices that could be terminals
// (sterad terminals discover); a machine without a USB subsystem gets
// "not available: …" in the result rather than an error.
//
// # Sessions
//
// A Session owns one terminal; sessions share nothing, so any number run
// side by side. Its Run method is a supervisor: it opens the transport,
// says HELLO, checks that the terminal is the one configured (protocol
// version and terminal id: a mismatch is an error logged once and retried,
// the terminal shown offline with the reason), keeps the idle link alive
// with PING, and on any link failure closes the transport and reconnects
// with backoff (terminal-link.md §3). A device missing at start-up is
// simply retried; the daemon starts anyway and the terminal shows as
// offline.
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
//
// # Encrypting terminals (terminal-link.md §7)
//
// A CARD with a "p2pe" object becomes a sterad.Card with no PAN: Masked,
// Brand, Entry, the chip data, and Encrypted {KSN, Data} exactly as the
// terminal sent them (their form checked: 24 uppercase hex digits, whole
// AES blocks). The session has no key and cannot open the block. Such a
// CARD that also carries pan, expiry or track2, or chip data holding the
// card's own EMV tags (5A, 57, 56, 5F20, 5F24, 9F1F, 9F20, 9F6B), is
// refused as terminal_bad_card (acknowledged, then CANCEL): its card data
// is dropped, and the log shows the masked number at most.
//
// SessionConfig.RequireP2PE is card_data: blind. A terminal whose
// HELLO_RESP lacks "p2pe" is then refused after HELLO: offline, with
// ErrNoP2PE in Info().LastError (logged once, retried with backoff like a
// wrong terminal, so it comes up once it is swapped or reconfigured), its
// model and capabilities shown. A CARD with a card number in clear is
// refused from any terminal. Without RequireP2PE (card_data: clear) a
// terminal without p2pe works as before; an encrypting terminal is
// accepted too and its cards come encrypted, to be passed on unchanged
// (the acquirer decrypts them whatever sterad's mode).
//
// # Decisions where the spec is silent
//
//   - Offline within seconds. An unplugged device (pty EIO, USB no-device)
//     fails the link at once. A terminal that went silent (switched off,
//     RS-232 cable cut) gives no error: the link only fails when a PING
//     has gone unanswered through the retransmissions (5 s idle + 3 × T2 =
//     11 s). So a PING unanswered for T2 (no ACK, or no PONG after the
//     ACK) already shows the terminal offline (Info().State, with the
//     reason in LastError) and makes ReadCard and WaitReady treat it as
//     offline: 5 + 2 = 7 s after the last traffic with the defaults
//     (Session.OfflineWithin). The link rules are unchanged: the link
//     still fails after the retransmissions (or when the PONG misses T3);
//     if the ACK, the PONG or any frame comes first, the terminal is ready
//     again on the same link. ShowOutcome, Cancel and Query still try such a link:
//     they continue or reconcile a transaction already under way, and a
//     late ACK must not turn it into a case for the operator.
//   - Kind. HELLO_RESP's kind is shown when it is fixed or handheld (a
//     different one than configured is logged); an unknown or empty kind is
//     logged and the configured kind is shown.
//   - Several devices with the same USB ids and no serial number configured
//     is an error listing their serial numbers, never a guess.
//   - USB timeouts. IN transfers of DefaultUSBReadSize bytes (rounded up to
//     the endpoint's max packet size) time out after DefaultUSBReadTimeout
//     and start again; an OUT endpoint that takes no data for
//     DefaultUSBWriteTimeout (T2) fails the stream, as a hung device.
//
// # Hardware test
//
// This package's USB tests run against fake endpoints (fragmenting,
// delaying, timing out and vanishing): the CI machine has no USB. On a
// machine with a handheld attached:
//
//	go test -tags usbhw -run USBHardware -v ./device/ -usb.vid=0x1234 -usb.pid=0x5678 [-usb.serial=SN] [-usb.id=HAND0001] [-usb.replug]
//
// It discovers the device, exchanges HELLO and PINGs over its bulk
// endpoints, brings a session up and, with -usb.replug, asks the operator
// to unplug and re-plug it. It runs no card transaction. See USB.md.
package device
