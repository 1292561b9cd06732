// Package settlement adds up closed batches into the settlement report:
// per business day and card brand the count, gross sales, refunds, net,
// merchant fee, amount paid and payout date. It also holds the Japanese
// bank-holiday calendar the payout dates depend on. It imports only the
// domain (package sterad) and decimal; the lead's batch close calls
// Summarize, the API and CLI call ParseRange and Build.
//
// # Business day
//
// A transaction belongs to the hotel's business day: the local date (in
// the configured time zone) of its CreatedAt minus the settlement cut-off
// (ParseCutoff, "02:00" by default: the night audit closes the day). A
// sale at 01:30 on the 6th belongs to the 5th; one at 02:00 to the 6th.
// The cut-off is subtracted from the local wall clock (BusinessDay).
// Summarize turns a batch's transactions into sterad.DayTotals at batch
// close: only transactions that count (sterad.Transaction.Counted:
// approved sales, completions and no-show charges are debits, approved
// refunds credits), by business day and brand, brand order sterad.Brands
// then unknown. A business day may be split between two batches (a batch
// closed at 03:00 holds the day before and the first hour of the new
// one); Build adds the parts up before computing anything.
//
// # Payout schedule
//
// From the bulk merchant service's 振込スケジュール
// (the hotel association's bulk merchant service: docs/decisions.md):
// sales of business days the 1st–15th are paid on the last day of that
// month; sales of the 16th to the month's end on the 15th of the next
// month. A payout date that is a Saturday, Sunday or bank holiday moves
// to the previous business day (直前の営業日, online-card-payment-rules.ja.txt).
// Examples: sales of 2025-10-16..31 are paid on Friday 2025-11-14 (the
// 15th is a Saturday); sales of 2025-12-01..15 on Tuesday 2025-12-30
// (Dec 31 is a bank holiday).
//
// # Calendar
//
// DefaultCalendar covers 2025–2028 and is generated from the rules of the
// 国民の祝日に関する法律 as they stand: 元日 Jan 1, 成人の日 2nd Monday of
// January, 建国記念の日 Feb 11, 天皇誕生日 Feb 23, 春分の日, 昭和の日 Apr 29,
// 憲法記念日 May 3, みどりの日 May 4, こどもの日 May 5, 海の日 3rd Monday of
// July, 山の日 Aug 11, 敬老の日 3rd Monday of September, 秋分の日,
// スポーツの日 2nd Monday of October, 文化の日 Nov 3, 勤労感謝の日 Nov 23;
// the equinox days by the standard approximation valid 1980–2099
// (春分日 = int(20.8431 + 0.242194(Y−1980) − int((Y−1980)/4)), 秋分日 with
// 23.2488), computed in integers. Then 振替休日 (art. 3(2): a national
// holiday on a Sunday makes the nearest following day that is not a
// national holiday a holiday) and 国民の休日 (art. 3(3): a day between two
// national holidays), and the bank holidays of the Banking Act's
// enforcement order: Dec 31, Jan 2 and Jan 3 (banks close Dec 31–Jan 3).
// Saturdays and Sundays are never business days.
//
// The calendar answers only for the years it covers: IsBusinessDay,
// PreviousBusinessDay and PayoutDate fail with an EInvalid *sterad.Error,
// code CodeNotCovered, for a date in any other year, so a payout date is
// never computed from a year nobody has checked (sales of 2028-12-16..31
// are paid in January 2029: the default calendar cannot say when). The
// operator extends it with LoadCalendar: a file in the format of
// testdata/holidays/jp-bank-holidays-2025-2028.txt (one "YYYY-MM-DD name"
// per line, # comments) whose years replace or add to the default ones.
// NationalHolidays and BankHolidays generate any year 2022–2099 by the
// same rules, for writing such a file; the equinox days of years the
// National Astronomical Observatory has not yet announced (it does each
// February for the next year) are predictions, and the law may change.
//
// # Fees and rounding
//
// The fee rate is per brand, in percent, from the configuration
// (ParseFeeTable; DefaultFees are the bulk merchant service's rates). Yen
// have no minor unit, so the fee must be rounded; the rule is:
//
//   - The fee is computed once per report line — one business day and one
//     brand — on the line's net (gross sales − refunds), never per
//     transaction: Fee(net, rate) = net × rate / 100, truncated toward
//     zero.
//   - For a positive net that is rounding down to the yen (1円未満切り捨て),
//     the usual Japanese rule for fees and the one in the merchant's favour.
//   - Refunds reduce the fee base. A line whose refunds exceed its sales
//     has a negative net and a negative fee, truncated toward zero too:
//     Fee(−n) = −Fee(n), so a ¥1,000 sale and its refund on another day
//     cost no fee together (rounding a negative fee down would pay the
//     merchant a yen for every such pair).
//   - Totals per brand and overall add up the lines' fees; they are not
//     recomputed on the total, so paid = net − fee holds in every row.
//
// Why per line and not per transaction: rounding each slip down loses up
// to a yen on every slip (three ¥1,000 Visa sales at 2.58 % are ¥25 each,
// ¥75, against ¥77 on the ¥3,000 line: TestFeeRoundingPerLine), a bias
// that grows with volume; a closed batch keeps only DayTotals, so a
// per-line fee is the only one that can be computed again from what is
// stored; and because a line adds up the day's parts from all batches
// before the fee, the fee does not depend on when batches closed. The
// acquirer's own statement may round over another unit (a payout
// period, say); a per-line fee differs from that by less than ¥1 per
// line.
//
// Cards whose brand is unknown (no IIN range matched) are reported under
// brand "unknown". The fee table may give "unknown" a rate; without one
// (the default), such lines, like any brand without a rate, show a null
// rate and a zero fee and the report carries a warning, so the hotel sees
// the money and that its fee is not known, instead of the report failing.
//
// # Report
//
// Build sums the DayTotals of closed batches within the business days
// [from, to]: the sum of the lines' net over any range equals the sum of
// the closed batches' DayTotals (debits − credits) for the days of that
// range. WriteCSV writes the lines (amounts as plain yen integers) and
// ParseCSV reads them back.
package settlement
