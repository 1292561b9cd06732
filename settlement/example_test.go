package settlement_test

import (
	"fmt"
	"os"
	"time"

	"github.com/shopspring/decimal"
	"github.com/sterad/sterad"
	"github.com/sterad/sterad/settlement"
)

func ExampleCalendar_PayoutDate() {
	cal := settlement.DefaultCalendar()
	for _, s := range []string{"2025-10-20", "2025-12-05", "2028-12-20"} {
		sale, _ := sterad.ParseDate(s)
		p, err := cal.PayoutDate(sale)
		if err != nil {
			fmt.Println(s, "→", sterad.ErrorCode(err))
			continue
		}
		fmt.Println(s, "→", p, p.Weekday())
	}
	// Output:
	// 2025-10-20 → 2025-11-14 Friday
	// 2025-12-05 → 2025-12-30 Tuesday
	// 2028-12-20 → calendar_not_covered
}

func ExampleFee() {
	visa := decimal.RequireFromString("2.58")
	fmt.Println(settlement.Fee(1000, visa), settlement.Fee(3000, visa), settlement.Fee(-1000, visa))
	// Output: 25 77 -25
}

func ExampleBuild() {
	jst := time.FixedZone("JST", 9*60*60)
	cutoff, _ := settlement.ParseCutoff("02:00")
	at := time.Date(2025, 11, 20, 1, 30, 0, 0, jst) // before the cut-off: business day Nov 19
	txns := []*sterad.Transaction{{
		Op: sterad.OpSale, Status: sterad.StatusApproved, Brand: sterad.BrandVisa,
		Amount: sterad.AmountFromMinor(38500, sterad.JPY), CreatedAt: at,
	}}
	batch := &sterad.Batch{Number: 1, State: sterad.BatchClosed, Days: settlement.Summarize(txns, cutoff, jst)}
	from, to, _ := settlement.ParseRange("2025-11-01", "2025-11-30")
	r, _ := settlement.Build([]*sterad.Batch{batch}, from, to, settlement.DefaultFees(), settlement.DefaultCalendar())
	r.WriteCSV(os.Stdout)
	// Output:
	// business_day,brand,count,gross,refunds,net,fee_rate,fee,paid,payout_date
	// 2025-11-19,visa,1,38500,0,38500,2.58,993,37507,2025-12-15
}
