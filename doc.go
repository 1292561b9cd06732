// Package sterad is the domain of a payment terminal gateway for Japanese
// hotels: transactions and their state machine, amounts, card data that
// masks itself, the acquirer's message vocabulary, and the interfaces that
// the adapters implement (Acquirer, Terminal, Store, Clock).
//
// The rules that need no I/O are the domain's too: the response-code
// table and CheckAnswer, the linked-transaction rules (AdmitLink,
// LinkStillValid), batch totals, the stand-in limits. The flows that tie
// them together (a front-desk clerk's pre-authorization at check-in,
// incremental authorization, completion at check-out, sale, refund, void,
// card check and no-show charge) live in package gateway.
//
// The package imports only the standard library and
// github.com/shopspring/decimal. Adapters live in sub-packages and import
// this one, never each other (protocol is the shared wire format):
//
//	gateway/    the flows: requests, terminals, store and forward, batch close, vault
//	protocol/   ISO 8583 host messages and client, SFL/1 terminal frames
//	device/     serial and USB transports, terminal sessions
//	offline/    bbolt store: journal, queue, encryption at rest
//	settlement/ batch close, fees and payout dates
//	simulator/  test acquirer and terminal simulator
//	api/        HTTP API server and client
//	cmd/sterad  the binary that wires everything
package sterad
