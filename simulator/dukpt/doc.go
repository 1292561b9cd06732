// Package dukpt is AES DUKPT (ANSI X9.24-3-2017) for the simulators, and
// the card block of encrypting (P2PE) terminals built on it
// (docs/terminal-protocol.md §7, docs/acquirer-protocol.md §8).
//
// It is simulator code only. The daemon never imports it: no BDK and no
// terminal key is ever at the hotel, so the gateway cannot decrypt a card
// block and passes it on unchanged. The simulated terminal encrypts with
// a Terminal; the test acquirer decrypts with Decrypt.
//
//	term := dukpt.NewTestTerminal("FRONT001")            // initial key only
//	blk, err := term.Encrypt(dukpt.Card{PAN: pan, Expiry: "2812"})
//	// CARD payload: "p2pe": blk  →  {"ksn":"12345678…00000001","data":"9A0C…"}
//	card, err := dukpt.Decrypt(dukpt.TestBDK(), blk)   // the host: 81 on error
//
// # Keys
//
// AES-128 only: a 16-byte BDK, initial keys, intermediate derivation keys
// and working keys (§6.3). The derivation data is the 16-byte block of
// version 01, key block counter 01, key usage, algorithm 0002 (AES-128),
// length 0080, then the initial key ID (for the initial key) or the KSN's
// rightmost 8 bytes, the derivation ID and a counter (for the others); a
// key is that block encrypted under its parent. A counter's derivation
// key is reached from the initial key along the counter's one bits, most
// significant first; its working key is derived from that with the
// usage's derivation data. Card blocks use UsageDataEncryptRequest
// (0x3000). The tests check all of it against the standard's published
// vectors.
//
// A KSN is the 8-byte initial key ID (4-byte BDK ID, 4-byte derivation ID)
// and a 4-byte transaction counter, written as 24 uppercase hex digits. A
// terminal never uses counter 0 nor one with more than 16 one bits, and is
// exhausted after 0xFFFF0000.
//
// # Card block
//
// The UTF-8 JSON object {"pan":"…","expiry":"YYMM"} (swipe adds
// "track2"), zero-padded to whole 16-byte blocks, AES-128-CBC with an IV
// of 16 zero bytes under the request data-encryption key of the block's
// KSN, uppercase hex. CBC without a MAC does not authenticate, so Decrypt
// refuses anything but exactly such an object with a well-formed card: a
// tampered block or KSN decrypts to one only with negligible chance.
// Errors never contain card data, and Card prints only its masked PAN.
//
// # The test BDK
//
// TestBDK is the standard's own example key, FEDCBA9876543210F1F1F1F1F1F1F1F1,
// published in Annex B: anyone can decrypt what it protects. It exists for
// simulators and tests, never for production.
package dukpt
