package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/sterad/sterad"
	"github.com/sterad/sterad/api"
	"github.com/sterad/sterad/offline"
	"github.com/sterad/sterad/simulator/terminal"
)

// pastStay is a stay that arrived yesterday: a no-show may be charged.
func pastStay() *api.StayInput {
	in := time.Now().AddDate(0, 0, -1)
	return &api.StayInput{CheckIn: in.Format(time.DateOnly), CheckOut: in.AddDate(0, 0, 1).Format(time.DateOnly)}
}

func keyed(pan string) *api.CardInput { return &api.CardInput{PAN: sterad.PAN(pan), Expiry: expiry()} }

func TestCardChecksAndNoShows(t *testing.T) {
	d := startDaemon(t, clearMode)
	ctx := context.Background()

	// Keyed from the reservation: valid, or the decline reason.
	cc := d.post(api.TransactionRequest{Op: "cardcheck", Card: keyed("5555555555554444")})
	if cc.Status != "approved" || cc.ResponseCode != "85" || cc.Batch != nil || cc.Amount != "0" {
		t.Fatalf("card check: %+v", cc)
	}
	for pan, reason := range map[string]string{"4000000000000002": "do not honor", "4000000000009995": "insufficient funds", "4000000000000069": "expired card"} {
		if tx := d.post(api.TransactionRequest{Op: "cardcheck", Card: keyed(pan)}); tx.Status != "declined" || !strings.Contains(tx.Reason, reason) {
			t.Errorf("card check %s: %s %q", sterad.MaskPAN(pan), tx.Status, tx.Reason)
		}
	}
	if ae := d.postErr(api.TransactionRequest{Op: "cardcheck", Card: keyed("4111111111111112")}); ae.Status != 400 || ae.Code != "invalid_card" {
		t.Fatalf("Luhn: %v", ae)
	}
	if ae := d.postErr(api.TransactionRequest{Op: "cardcheck", Amount: "100", Card: keyed("4111111111111111")}); ae.Status != 400 {
		t.Fatalf("card check with an amount: %v", ae)
	}

	// Keyed by the clerk at the terminal: the terminal prints the result.
	d.card("FRONT001", terminal.Card{PAN: "3530111333300000", Entry: "keyed"})
	atTerm := d.post(api.TransactionRequest{Op: "cardcheck", Terminal: "FRONT001"})
	if atTerm.Status != "approved" || atTerm.Entry != "keyed" {
		t.Fatalf("card check at the terminal: %+v", atTerm)
	}
	slips := d.m.SimTerminals["FRONT001"].Slips()
	if last := slips[len(slips)-1]; last.TxnID != atTerm.ID || !strings.Contains(strings.Join(last.Lines, " "), "CARD VALID") {
		t.Fatalf("card check slip: %+v", last)
	}

	// A guaranteed reservation: the card is checked, kept, and charged.
	g1 := d.post(api.TransactionRequest{Op: "cardcheck", Card: keyed("4111111111111111"), Reference: "RSV-VAULT", Stay: pastStay()})
	g2 := d.post(api.TransactionRequest{Op: "cardcheck", Card: keyed("378282246310005"), Reference: "RSV-TOKEN", Stay: pastStay()})
	if g1.Token == nil || g2.Token == nil {
		t.Fatalf("a guarantee card check returns a token: %+v %+v", g1, g2)
	}
	vault, err := d.c.Vault(ctx)
	if err != nil || len(vault) != 2 {
		t.Fatalf("vault: %v %+v", err, vault)
	}
	ns := d.post(api.TransactionRequest{Op: "noshow", Reference: "RSV-VAULT", Amount: "18000", Stay: pastStay()})
	if ns.Status != "approved" || ns.MaskedPAN != "411111******1111" || ns.Entry != "keyed" {
		t.Fatalf("no-show from the vault: %+v", ns)
	}
	nt := d.post(api.TransactionRequest{Op: "noshow", Reference: "RSV-TOKEN", Amount: "22000", Stay: pastStay(), Token: *g2.Token})
	if nt.Status != "approved" || nt.Entry != "token" {
		t.Fatalf("no-show with a token: %+v", nt)
	}
	nk := d.post(api.TransactionRequest{Op: "noshow", Reference: "RSV-KEYED", Amount: "15000", Stay: pastStay(), Card: keyed("6250947000000014")})
	if nk.Status != "approved" || nk.Brand != "unionpay" {
		t.Fatalf("keyed no-show: %+v", nk)
	}
	if ae := d.postErr(api.TransactionRequest{Op: "noshow", Reference: "RSV-KEYED", Amount: "15000", Stay: pastStay(), Card: keyed("6250947000000014")}); ae.Status != 409 || ae.Code != "already_charged" {
		t.Fatalf("second no-show: %v", ae)
	}
	if ae := d.postErr(api.TransactionRequest{Op: "noshow", Reference: "RSV-NOBODY", Amount: "15000", Stay: pastStay()}); ae.Status != 404 {
		t.Fatalf("no card kept: %v", ae)
	}
	future := &api.StayInput{CheckIn: time.Now().AddDate(0, 0, 3).Format(time.DateOnly), CheckOut: time.Now().AddDate(0, 0, 4).Format(time.DateOnly)}
	if ae := d.postErr(api.TransactionRequest{Op: "noshow", Reference: "RSV-LATER", Amount: "15000", Stay: future, Card: keyed("4111111111111111")}); ae.Status != 409 || ae.Code != "noshow_too_early" {
		t.Fatalf("no-show before arrival: %v", ae)
	}
	// Both charged guarantees left the vault.
	if vault, _ := d.c.Vault(ctx); len(vault) != 0 {
		t.Fatalf("vault after the charges: %+v", vault)
	}
	// A mistaken no-show is voided.
	if v := d.post(api.TransactionRequest{Op: "void", Original: nk.ID}); v.Status != "approved" {
		t.Fatalf("void of the mistaken no-show: %+v", v)
	}
	// The host's ledger: two no-shows counted, the voided one not; the
	// card checks are not in any batch.
	var noshows int
	for _, e := range d.m.SimHost.Ledger().Approved {
		if e.Kind == "noshow" {
			noshows++
		}
	}
	if noshows != 2 {
		t.Fatalf("host counts %d no-shows", noshows)
	}
}

// testCardNumbers are every card of acquirer-host.md §7 and a Luhn failure.
var testCardNumbers = []string{
	"4111111111111111", "5555555555554444", "3530111333300000", "378282246310005", "30569309025904",
	"6250947000000014", "4000000000000002", "4000000000009995", "4000000000000069", "4000000000000119",
	"4000000000000226",
}

// TestDataAtRest runs a day of every operation with every test card, stops
// the daemon, and scans every byte it left behind — the store, the keys,
// the simulators' files and the log — for any card number in clear, in
// packed BCD and in UTF-16. After a purge, the purged cards cannot be
// opened again.
func TestDataAtRest(t *testing.T) {
	var logPath string
	d := startDaemon(t, clearMode, func(m *Main) {
		logPath = filepath.Join(m.Config.DataDir, "sterad.log")
		f, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		m.Logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := context.Background()
	entries := []string{"chip", "ctls", "swipe", "keyed"}
	var approvedSales []string
	for i, pan := range testCardNumbers {
		ref := fmt.Sprintf("RSV-%02d", i)
		// Card present, every entry mode (swipe carries track 2, chip the ICC data).
		d.card("FRONT001", terminal.Card{PAN: sterad.PAN(pan), Entry: entries[i%len(entries)]})
		if tx, _, err := d.c.CreateTransaction(ctx, api.TransactionRequest{Op: "sale", Terminal: "FRONT001", Amount: "3000", Reference: ref}, api.CreateOptions{}); err == nil && tx.Status == "approved" {
			approvedSales = append(approvedSales, tx.ID)
		}
		d.card("HAND0001", terminal.Card{PAN: sterad.PAN(pan), Entry: "ctls"})
		pre, _, err := d.c.CreateTransaction(ctx, api.TransactionRequest{Op: "preauth", Terminal: "HAND0001", Amount: "20000", Reference: ref + "-STAY", Stay: stay()}, api.CreateOptions{})
		if err == nil && pre.Status == "approved" {
			d.c.CreateTransaction(ctx, api.TransactionRequest{Op: "incremental", Original: pre.ID, Amount: "5000"}, api.CreateOptions{})
			d.c.CreateTransaction(ctx, api.TransactionRequest{Op: "completion", Original: pre.ID, Amount: "24000"}, api.CreateOptions{})
		}
		// Keyed: telephone order, card check, guarantee, no-show.
		d.c.CreateTransaction(ctx, api.TransactionRequest{Op: "sale", Amount: "1500", Card: keyed(pan)}, api.CreateOptions{IdempotencyKey: "key-" + ref})
		d.c.CreateTransaction(ctx, api.TransactionRequest{Op: "cardcheck", Card: keyed(pan)}, api.CreateOptions{})
		d.c.CreateTransaction(ctx, api.TransactionRequest{Op: "cardcheck", Card: keyed(pan), Reference: ref, Stay: pastStay()}, api.CreateOptions{})
		if i%2 == 0 {
			d.c.CreateTransaction(ctx, api.TransactionRequest{Op: "noshow", Reference: ref, Amount: "12000", Stay: pastStay()}, api.CreateOptions{})
		}
	}
	for i, id := range approvedSales {
		op := api.TransactionRequest{Op: "refund", Original: id, Amount: "1000"}
		if i%2 == 1 {
			op = api.TransactionRequest{Op: "void", Original: id}
		}
		d.post(op)
	}
	// Cancel one kept reservation; keep the others for the purge.
	vault, err := d.c.Vault(ctx)
	if err != nil || len(vault) == 0 {
		t.Fatalf("vault: %v %+v", err, vault)
	}
	if _, err := d.c.ReleaseVault(ctx, vault[0].Reference); err != nil {
		t.Fatal(err)
	}
	purgedOwners := []string{sterad.VaultOwner(vault[0].Reference)}
	logs := d.log.String()
	dir := d.m.Config.DataDir
	d.m.Close()

	scanned, found, err := scanForCards(dir, testCardNumbers)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("card data at rest: %s", f)
	}
	if scanned.files < 5 {
		t.Fatalf("scanned only %d files", scanned.files)
	}
	var weak []string
	for _, pan := range testCardNumbers {
		if !distinctiveBCD(pan) {
			weak = append(weak, sterad.MaskPAN(pan))
		}
	}
	t.Logf("scanned %d files, %d bytes: no card number in clear, BCD or UTF-16 (BCD not checked for the low-entropy %v)", scanned.files, scanned.bytes, weak)
	for _, pan := range testCardNumbers {
		for _, enc := range encodings(pan) {
			if bytes.Contains([]byte(logs), enc.b) {
				t.Errorf("the log contains %s in %s", sterad.MaskPAN(pan), enc.name)
			}
		}
	}

	// The released card cannot be opened from what is on disk; the
	// others still can until they are purged.
	db, err := offline.Open(dir, storeOptions(t, dir)) // storecmd_test.go: with the simulation's KEK
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, owner := range purgedOwners {
		if _, err := db.OpenCard(ctx, owner); !errors.Is(err, sterad.ErrNotFound) {
			t.Errorf("%s: a released card is still readable (%v)", owner, err)
		}
	}
	if _, err := db.OpenCard(ctx, sterad.VaultOwner(vault[1].Reference)); err != nil {
		t.Errorf("a kept guarantee card is unreadable: %v", err)
	}
}

type scanResult struct{ files, bytes int }

type encoded struct {
	name string
	b    []byte
}

// encodings are the byte strings a card number could be stored as (BCD is
// matched nibble by nibble by containsNibbles).
func encodings(pan string) []encoded {
	u := utf16.Encode([]rune(pan))
	le, be := make([]byte, 2*len(u)), make([]byte, 2*len(u))
	for i, r := range u {
		le[2*i], le[2*i+1] = byte(r), byte(r>>8)
		be[2*i], be[2*i+1] = byte(r>>8), byte(r)
	}
	return []encoded{{"ASCII", []byte(pan)}, {"UTF-16LE", le}, {"UTF-16BE", be}}
}

// scanForCards reads every file under dir and returns where a card number
// appears in clear (ASCII), in UTF-16, or in packed BCD at either nibble.
func scanForCards(dir string, pans []string) (scanResult, []string, error) {
	var res scanResult
	var found []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type()&fs.ModeSymlink != 0 || e.IsDir() {
			return nil // the pty links point outside the data directory
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		res.files++
		res.bytes += len(b)
		rel := strings.TrimPrefix(p, dir)
		for _, pan := range pans {
			for _, enc := range encodings(pan) {
				if bytes.Contains(b, enc.b) {
					found = append(found, fmt.Sprintf("%s: %s in %s", rel, sterad.MaskPAN(pan), enc.name))
				}
			}
			for off := 0; off < 2 && distinctiveBCD(pan); off++ {
				if at := indexNibbles(b, pan, off); at >= 0 {
					found = append(found, fmt.Sprintf("%s: %s in packed BCD (nibble offset %d) at byte %d: % x", rel, sterad.MaskPAN(pan), off, at, b[max(0, at-8):min(len(b), at+12)]))
				}
			}
		}
		return nil
	})
	return res, found, err
}

// The scanner finds a card number planted in each encoding: without this,
// a clean scan would prove nothing.
func TestScannerFindsPlantedCards(t *testing.T) {
	dir := t.TempDir()
	pan := "378282246310005"
	bcdAt := func(off int) []byte {
		b := make([]byte, 16)
		for i, c := range pan {
			n := off + i
			if n%2 == 0 {
				b[n/2] |= byte(c-'0') << 4
			} else {
				b[n/2] |= byte(c - '0')
			}
		}
		return b
	}
	plants := map[string][]byte{"ascii": []byte("x" + pan + "y"), "bcd0": bcdAt(0), "bcd1": bcdAt(1)}
	for _, enc := range encodings(pan)[1:] {
		plants[enc.name] = append([]byte{0xAA}, enc.b...)
	}
	for name, b := range plants {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, found, err := scanForCards(dir, []string{pan})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != len(plants) {
		t.Fatalf("found %d of %d planted cards: %v", len(found), len(plants), found)
	}
}

// distinctiveBCD reports whether a card number's packed BCD form is worth
// looking for in binary files. The decline cards of acquirer-host.md §7
// (4000000000000002, …0069, …0119, …0226, …9995) pack to an integer such
// as 40 00 00 00 00 00 00 02: a run of zero bytes that the integers in any
// bbolt page header spell by chance (seen: the element headers 34 00 00 00
// 00 00 00 00 2a read at a nibble offset). Numbers with eight or more zero
// digits in a row are checked in clear and UTF-16 only, and so are numbers
// with any digit eight times in a row: 4111111111111111 packs to 41 then
// 11 11 11 …, a run that a C library's tables spell by chance (seen in a
// core of the daemon: a table of 0x11 bytes in an anonymous mapping
// beside libpthread).
func distinctiveBCD(pan string) bool {
	for d := '0'; d <= '9'; d++ {
		if strings.Contains(pan, strings.Repeat(string(d), 8)) {
			return false
		}
	}
	return true
}

// indexNibbles returns the byte where the digits appear in b as packed
// BCD starting at the given nibble offset (0: a high nibble, 1: a low
// one), or -1.
func indexNibbles(b []byte, digits string, offset int) int {
	// The whole bytes the digits pack to from that offset, found with
	// bytes.Index (a core is hundreds of megabytes), then the nibbles at
	// either end checked.
	var mid []byte
	for i := offset; i+1 < len(digits); i += 2 {
		mid = append(mid, (digits[i]-'0')<<4|(digits[i+1]-'0'))
	}
	tail := (len(digits)-offset)%2 == 1
	for from := 0; from < len(b); {
		i := bytes.Index(b[from:], mid)
		if i < 0 {
			return -1
		}
		j := from + i
		from = j + 1
		if offset == 1 && (j == 0 || b[j-1]&0xF != digits[0]-'0') {
			continue
		}
		if tail && (j+len(mid) >= len(b) || b[j+len(mid)]>>4 != digits[len(digits)-1]-'0') {
			continue
		}
		return j - offset
	}
	return -1
}
