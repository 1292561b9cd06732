package main

import (
	"github.com/sterad/sterad"
	"github.com/sterad/sterad/gateway"
)

// The gateway serves the API's services; the settlement report is built
// from its batches by settlementReports.
var (
	_ sterad.TransactionService = (*gateway.Gateway)(nil)
	_ sterad.TerminalService    = (*gateway.Gateway)(nil)
	_ sterad.QueueService       = (*gateway.Gateway)(nil)
	_ sterad.BatchService       = (*gateway.Gateway)(nil)
	_ sterad.VaultService       = (*gateway.Gateway)(nil)
	_ sterad.ReservationService = (*gateway.Gateway)(nil)
	_ sterad.StatusService      = (*gateway.Gateway)(nil)
	_ sterad.SettlementService  = (*settlementReports)(nil)
)
