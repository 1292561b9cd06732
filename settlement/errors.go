package settlement

// Error codes of the *sterad.Error values this package returns. All are of
// kind sterad.EInvalid: the input (a request, the configuration, a
// calendar that is too old for the dates asked about) is what must change.
const (
	CodeNotCovered     = "calendar_not_covered" // a date in a year the calendar does not cover
	CodeInvalidDate    = "invalid_date"         // a date that is missing, malformed or does not exist
	CodeInvalidRange   = "invalid_range"        // a report range whose from is after its to
	CodeUnknownBrand   = "unknown_brand"        // a fee table names a brand that does not exist
	CodeDuplicateBrand = "duplicate_brand"      // a fee table names a brand twice ("Visa" and "visa")
	CodeInvalidRate    = "invalid_fee_rate"     // a fee rate that is not a percentage
	CodeInvalidCutoff  = "invalid_cutoff"       // a settlement cut-off that is not a time of day
)
