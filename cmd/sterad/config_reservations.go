package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/sterad/sterad"
)

// ReservationConfig governs guaranteed reservations (docs/configuration.md
// "Configuration", version 1.1).
type ReservationConfig struct {
	NoShowCutoff string   `yaml:"noshow_cutoff"` // local time on the arrival day, default 18:00
	Retention    Duration `yaml:"retention"`     // after check-out, default 7 days
	HoldAlert    Duration `yaml:"hold_alert"`    // an open pre-authorization older than this raises an alert, default 7 days
	// CancellationPolicy is the fee table by days before arrival; none:
	// a cancellation can charge no fee (it is refused when a fee would be
	// due) and no policy is recorded with reservations.
	CancellationPolicy *CancellationPolicyConfig `yaml:"cancellation_policy"`
}

// CancellationPolicyConfig is reservations.cancellation_policy.
type CancellationPolicyConfig struct {
	Version string         `yaml:"version"`
	Rows    []FeeRowConfig `yaml:"rows"`
	NoShow  *NoShowConfig  `yaml:"noshow"`
}

// FeeRowConfig is one row: {days_before: 7, percent: 20, of: first_night}.
type FeeRowConfig struct {
	DaysBefore *int   `yaml:"days_before"`
	Percent    string `yaml:"percent"` // a number 0–100, "20" or 20
	Of         string `yaml:"of"`      // first_night (the default)
}

// NoShowConfig is the no-show row: {percent: 100, of: first_night}.
type NoShowConfig struct {
	Percent string `yaml:"percent"`
	Of      string `yaml:"of"`
}

// VoucherConfig is one travel-voucher program under vouchers:.
type VoucherConfig struct {
	ID                    string `yaml:"id"`
	Name                  string `yaml:"name"`
	FaceValue             string `yaml:"face_value"`
	PerPersonNight        int    `yaml:"per_person_night"`
	MinPlanPerPersonNight string `yaml:"min_plan_per_person_night"` // default: no minimum
	ValidFrom             string `yaml:"valid_from"`
	ValidTo               string `yaml:"valid_to"`
	DirectBookingsOnly    bool   `yaml:"direct_bookings_only"`
	ClaimDay              int    `yaml:"claim_day"`
	NumberPattern         string `yaml:"number_pattern"` // default: 1–32 letters, digits or hyphens
}

// CancellationPolicy returns the configured policy, or nil when none is
// configured. It fails as Validate does.
func (c *Config) CancellationPolicy() (*sterad.CancellationPolicy, error) {
	if c.Reservations.CancellationPolicy == nil {
		return nil, nil
	}
	p, errs := c.Reservations.CancellationPolicy.policy("reservations.cancellation_policy")
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &p, nil
}

// VoucherPrograms returns the configured voucher programs. It fails as
// Validate does.
func (c *Config) VoucherPrograms() ([]sterad.VoucherProgram, error) {
	ps, errs := voucherPrograms(c.Vouchers)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ps, nil
}

// reservationErrors checks reservations: and vouchers:, every problem
// named by its key.
func (c *Config) reservationErrors() []error {
	var errs []error
	if !timeRe.MatchString(c.Reservations.NoShowCutoff) {
		errs = append(errs, fmt.Errorf("reservations.noshow_cutoff %q is not a time like \"18:00\"", c.Reservations.NoShowCutoff))
	}
	if c.Reservations.HoldAlert.D() <= 0 {
		errs = append(errs, fmt.Errorf("reservations.hold_alert must be more than zero, like \"168h\""))
	}
	if pc := c.Reservations.CancellationPolicy; pc != nil {
		_, perrs := pc.policy("reservations.cancellation_policy")
		errs = append(errs, perrs...)
	}
	_, verrs := voucherPrograms(c.Vouchers)
	return append(errs, verrs...)
}

// policy converts the configuration into the domain's policy and checks
// it. Errors name their key under prefix. A row whose own values could
// not be read is reported once, by the key that failed, and the domain's
// checks of the table as a whole wait until every row can be read.
// (A row without days_before gets a placeholder of its own, negative and
// unique, whose complaints are dropped.)
func (pc *CancellationPolicyConfig) policy(prefix string) (sterad.CancellationPolicy, []error) {
	var errs []error
	var failed []string // the domain's messages about values that could not be read: "rows[1]: percent"
	p := sterad.CancellationPolicy{Version: pc.Version}
	for i, r := range pc.Rows {
		key := fmt.Sprintf("rows[%d]", i)
		row := sterad.FeeRow{DaysBefore: -1 - i, Of: sterad.FeeBasis(r.Of)}
		if r.DaysBefore == nil {
			errs = append(errs, fmt.Errorf("%s.%s.days_before: is required (0 is the arrival day)", prefix, key))
			failed = append(failed, key+": days_before")
		} else {
			row.DaysBefore = *r.DaysBefore
		}
		if row.Of == "" {
			row.Of = sterad.FeeOfFirstNight
		}
		pct, err := parsePercent(r.Percent)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.%s.percent: %s", prefix, key, err))
			failed = append(failed, key+": percent")
		}
		row.Percent = pct
		p.Rows = append(p.Rows, row)
	}
	if pc.NoShow != nil {
		n := sterad.NoShowFee{Of: sterad.FeeBasis(pc.NoShow.Of)}
		if n.Of == "" {
			n.Of = sterad.FeeOfFirstNight
		}
		pct, err := parsePercent(pc.NoShow.Percent)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.noshow.percent: %s", prefix, err))
			failed = append(failed, "noshow: percent")
		}
		n.Percent = pct
		p.NoShow = &n
	}
	if len(failed) > 0 {
		failed = append(failed, "rows: ") // the whole table is checked once its rows can be read
	}
	for _, e := range unjoin(p.Validate()) {
		msg := sterad.ErrorMessage(e)
		if slices.ContainsFunc(failed, func(f string) bool { return strings.HasPrefix(msg, f) }) {
			continue
		}
		errs = append(errs, fmt.Errorf("%s.%s", prefix, msg))
	}
	return p, errs
}

func parsePercent(s string) (decimal.Decimal, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return decimal.Zero, fmt.Errorf("is required: a number from 0 to 100")
	}
	d, err := decimal.NewFromString(s)
	if err != nil || strings.ContainsAny(s, "eE") {
		return decimal.Zero, fmt.Errorf("%q is not a number from 0 to 100 (write 20, not 20%%)", s)
	}
	return d, nil
}

// voucherPrograms converts vouchers: into the domain's programs and checks
// them, each error named by its key: vouchers[0].face_value (OITA2016).
func voucherPrograms(cfgs []VoucherConfig) ([]sterad.VoucherProgram, []error) {
	var errs []error
	var out []sterad.VoucherProgram
	ids := map[string]int{}
	for i, v := range cfgs {
		where := func(field string) string {
			if v.ID == "" {
				return fmt.Sprintf("vouchers[%d].%s", i, field)
			}
			return fmt.Sprintf("vouchers[%d].%s (%s)", i, field, v.ID)
		}
		failed := map[string]bool{}
		bad := func(field, format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", where(field), fmt.Sprintf(format, args...)))
			failed[field] = true
		}
		p := sterad.VoucherProgram{ID: v.ID, Name: v.Name, PerPersonNight: v.PerPersonNight,
			DirectBookingsOnly: v.DirectBookingsOnly, ClaimDay: v.ClaimDay, NumberPattern: v.NumberPattern}
		if v.FaceValue == "" {
			bad("face_value", "is required, like \"5000\"")
		} else if a, err := sterad.ParseAmount(v.FaceValue, sterad.JPY); err != nil {
			bad("face_value", "%s", sterad.ErrorMessage(err))
		} else {
			p.FaceValue = a
		}
		p.MinPlanPerPersonNight = sterad.NewAmount(0, sterad.JPY)
		if v.MinPlanPerPersonNight != "" {
			if a, err := sterad.ParseAmount(v.MinPlanPerPersonNight, sterad.JPY); err != nil {
				bad("min_plan_per_person_night", "%s", sterad.ErrorMessage(err))
			} else {
				p.MinPlanPerPersonNight = a
			}
		}
		for _, d := range []struct {
			field string
			in    string
			out   *sterad.Date
		}{{"valid_from", v.ValidFrom, &p.ValidFrom}, {"valid_to", v.ValidTo, &p.ValidTo}} {
			if d.in == "" {
				bad(d.field, "is required, like 2016-07-19")
				continue
			}
			date, err := sterad.ParseDate(d.in)
			if err != nil {
				bad(d.field, "%s", sterad.ErrorMessage(err))
				continue
			}
			*d.out = date
		}
		if failed["valid_from"] || failed["valid_to"] {
			failed["valid_to"], failed["valid_from"] = true, true // their order is checked once both can be read
		}
		for _, e := range unjoin(p.Validate()) {
			field, msg, _ := strings.Cut(sterad.ErrorMessage(e), ": ")
			if !failed[field] {
				errs = append(errs, fmt.Errorf("%s: %s", where(field), msg))
			}
		}
		if j, dup := ids[v.ID]; dup && v.ID != "" {
			errs = append(errs, fmt.Errorf("%s: %s is also the id of vouchers[%d]", where("id"), v.ID, j))
		}
		ids[v.ID] = i
		out = append(out, p)
	}
	return out, errs
}

// unjoin returns the errors joined in err, or err alone (none for nil).
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
