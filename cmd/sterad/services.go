package main

import "github.com/sterad/sterad"

// The gateway serves the API's services; the settlement report is built
// from its batches by settlementReports.
var (
	_ sterad.TransactionService = (*sterad.Gateway)(nil)
	_ sterad.TerminalService    = (*sterad.Gateway)(nil)
	_ sterad.QueueService       = (*sterad.Gateway)(nil)
	_ sterad.BatchService       = (*sterad.Gateway)(nil)
	_ sterad.VaultService       = (*sterad.Gateway)(nil)
	_ sterad.ReservationService = (*sterad.Gateway)(nil)
	_ sterad.StatusService      = (*sterad.Gateway)(nil)
	_ sterad.SettlementService  = (*settlementReports)(nil)
)
