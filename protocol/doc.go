// Package protocol holds sterad's wire formats: ISO 8583 messages to and
// from the acquirer, with the client that exchanges them, and the SFL/1
// link to the card terminals. Both ends of each wire import it: the gateway,
// and the simulators that stand in for the acquirer and the terminals.
//
// # Acquirer host messages (docs/acquirer-protocol.md)
//
// Spec declares the ISO 8583:1987 layout of the acquirer host interface:
// ASCII MTI, 8-byte binary bitmaps (the secondary one only when a field
// 65–128 is present), ASCII n fields zero-filled, an/ans fields
// space-filled, ASCII LLVAR/LLLVAR length prefixes, DE 48 as
// tag-length-value. One table (fields.go) describes every data element and
// every DE 48 tag once: its number or name, its layout, how it is put into
// and got from a sterad.HostMessage. Pack and Unpack are loops over it that
// convert between the wire bytes (without the 2-byte length header) and a
// HostMessage, validating every field; Spec, the moov-io/iso8583 declaration
// used with the connection, is derived from it, and ToISO, FromISO and
// UnpackISO expose that form. Errors are *FormatError values that name the
// field and never quote its content, which may be card data.
//
// Client implements sterad.Acquirer on one TCP (or TLS) connection framed
// by a 2-byte big-endian length; it is the project's own, on the same
// framing as before, in place of moov-io/iso8583-connection
// (docs/acquirer-link.md says why). Run connects, signs on (0800, DE 70 =
// 001) and keeps the link up: an echo after EchoInterval without a message
// from the host; an unanswered echo or MaxTimeouts exchanges in a row
// without an answer mark the link dead, and it is closed and reconnected
// with backoff. Exchange returns by its own deadline whatever the
// connection does, matches each response to its request by MTI class, STAN
// and terminal ID (the first answer counts, a second is late), refuses a
// request whose key is outstanding, and tells apart a request certainly
// not sent (sterad.ErrHostUnavailable) from one whose outcome is unknown
// (sterad.ErrNoResponse). Responses that come after Exchange stopped
// waiting are logged and counted, never used. Oversized and malformed
// messages from the host are skipped without costing the link. Drain
// closes the client gracefully: no new requests, the ones in flight get
// their answers.
//
// # Terminal link SFL/1 (docs/terminal-protocol.md)
//
// Frames are STX, version, SEQ, TYPE, a big-endian payload length, a JSON
// payload, ETX and a CRC-32 over everything between STX and the CRC.
// AppendFrame and EncodeFrame build them; Decoder reads them from a byte
// stream, resynchronizing after noise and dropping partial frames after T1.
// The payload types (Hello, ReadCard, CardData, Result, …) are marshalled
// with MarshalPayload and UnmarshalPayload; CardData masks the card number
// however it is printed. Link runs the link layer on an io.ReadWriteCloser:
// one unacknowledged data frame per direction, ACK/NAK, retransmission after
// T2, duplicate detection, and failure after MaxRetransmits.
package protocol
