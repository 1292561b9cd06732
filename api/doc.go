// Package api is sterad's HTTP API (docs/api.md): the
// Server that serves it and the Client the CLI calls it with.
//
// The Server depends on the domain's service interfaces (package sterad,
// services.go), not on the Gateway: cmd/sterad hands it the gateway for
// the payment services and a settlement report builder, and, in serve
// --simulate, the simulators' controls. Every route is registered here;
// errors map to statuses in the one table of statusOf. Its tests serve
// every route against fake services.
package api
