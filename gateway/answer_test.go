package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sterad/sterad"
)

// Issue 9, defect 8: an answer that does not match its request is not an
// approval (nor a decline): the outcome is unknown and the request is
// reversed, never recorded as approved.
func TestAnswerThatDoesNotMatchIsReversed(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(req, resp *sterad.HostMessage)
	}{
		{"no DE 39", func(req, resp *sterad.HostMessage) { resp.ResponseCode = "" }},
		{"approval for another amount", func(req, resp *sterad.HostMessage) { resp.Amount = sterad.NewAmount(100, sterad.JPY) }},
		{"approval without DE 4", func(req, resp *sterad.HostMessage) { resp.HasAmount = false }},
		{"approval without DE 38", func(req, resp *sterad.HostMessage) { resp.AuthCode = "" }},
		{"another processing code", func(req, resp *sterad.HostMessage) { resp.Processing = "200000" }},
		{"another MTI", func(req, resp *sterad.HostMessage) { resp.MTI = "0110" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.host.answer = func(m *sterad.HostMessage) (*sterad.HostMessage, error) {
				r, _ := h.host.approve(m)
				if m.MTI == sterad.MTIFinancial {
					tc.spoil(m, r)
				}
				return r, nil
			}
			sale := h.mustSubmit(keyedSale("4111111111111111", "8000"))
			if sale.Status != sterad.StatusReversed || !strings.Contains(fmt.Sprint(sale.Events), "does not match") {
				t.Fatalf("sale: %s %+v, want reversed because the answer does not match", sale.Status, sale.Events)
			}
			if got := mtis(h.host.messages()); strings.Join(got, " ") != "0200 0420" {
				t.Fatalf("sent %v, want the 0200 and its reversal", got)
			}
		})
	}
}

// A declined answer that is otherwise right still declines.
func TestCheckAnswer(t *testing.T) {
	req := &sterad.HostMessage{MTI: "0200", STAN: 1, TerminalID: "VIRT0001", Processing: "000000", HasAmount: true, Amount: sterad.NewAmount(8000, sterad.JPY)}
	ok := &sterad.HostMessage{MTI: "0210", STAN: 1, TerminalID: "VIRT0001", Processing: "000000", HasAmount: true, Amount: sterad.NewAmount(8000, sterad.JPY), ResponseCode: "00", AuthCode: "A1"}
	if err := sterad.CheckAnswer(req, ok); err != nil {
		t.Fatalf("a right approval: %v", err)
	}
	decline := *ok
	decline.ResponseCode, decline.AuthCode, decline.HasAmount = "05", "", false
	if err := sterad.CheckAnswer(req, &decline); err != nil {
		t.Fatalf("a decline without DE 38 or DE 4: %v", err)
	}
	check := &sterad.HostMessage{MTI: "0100", STAN: 2, TerminalID: "VIRT0001", HasAmount: true, Amount: sterad.NewAmount(0, sterad.JPY)}
	valid := &sterad.HostMessage{MTI: "0110", STAN: 2, TerminalID: "VIRT0001", ResponseCode: "85"}
	if err := sterad.CheckAnswer(check, valid); err != nil {
		t.Fatalf("a card check's 85 without DE 4 or 38: %v", err)
	}
	wrong := *ok
	wrong.STAN = 9
	if err := sterad.CheckAnswer(req, &wrong); !errors.Is(err, sterad.ErrBadAnswer) {
		t.Fatalf("another STAN: %v", err)
	}
}

// A pre-authorization approved for less than asked is not taken either.
func TestPartialApprovalIsNotTaken(t *testing.T) {
	h := newHarness(t)
	h.host.answer = func(m *sterad.HostMessage) (*sterad.HostMessage, error) {
		r, _ := h.host.approve(m)
		if m.MTI == sterad.MTIAuthorization {
			r.Amount = sterad.NewAmount(1000, sterad.JPY)
		}
		return r, nil
	}
	h.term.present(chipVisa)
	pre, _ := h.submit(sterad.Request{Op: "preauth", Terminal: "FRONT001", Amount: "30000", Reference: "R1", CheckIn: "2026-11-21", CheckOut: "2026-11-22"})
	if pre == nil || pre.Status == sterad.StatusApproved {
		t.Fatalf("pre-authorization approved for ¥1,000 of ¥30,000 was taken: %+v", pre)
	}
	p, _ := h.gw.Transaction(context.Background(), pre.ID)
	if p.Status != sterad.StatusReversed {
		t.Fatalf("status %s, want reversed", p.Status)
	}
}
