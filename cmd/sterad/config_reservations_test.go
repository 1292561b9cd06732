package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sterad/sterad"
)

// interfaceReservations is the reservations: and vouchers: example of docs/configuration.md,
// as written there.
const interfaceReservations = `
reservations:                     # version 1.1
  noshow_cutoff: "18:00"          # local time on the arrival day from which a no-show may be charged
  retention: 168h                 # a guarantee card or token is kept at most this long after check-out
  hold_alert: 168h                # an open pre-authorization older than this raises an alert
  cancellation_policy:            # the fee by days before arrival, as data; its version is recorded
    version: "2026-04"            # with each reservation when its card is checked
    rows:                         # days_before: from that many days before arrival (0 = the day)
      - {days_before: 7, percent: 20, of: first_night}
      - {days_before: 1, percent: 50, of: first_night}
      - {days_before: 0, percent: 100, of: first_night}
    noshow: {percent: 100, of: first_night}
vouchers:                         # travel-voucher programs (travel-voucher-handling.ja.txt)
  - {id: OITA2016, name: "おおいた宿泊券", face_value: "5000", per_person_night: 4,
     min_plan_per_person_night: "5000", valid_from: 2016-07-19, valid_to: 2016-09-30,
     direct_bookings_only: true, claim_day: 10, number_pattern: "^[0-9]{10}$"}
`

func loadReservationConfig(t *testing.T, yaml string) Config {
	t.Helper()
	cfg, err := LoadConfig(writeFile(t, "data_dir: "+t.TempDir()+"\n"+yaml))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return cfg
}

func TestReservationConfigFromInterface(t *testing.T) {
	cfg := loadReservationConfig(t, interfaceReservations)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the documented configuration is refused:\n%v", err)
	}
	if cfg.Reservations.HoldAlert.D() != 168*time.Hour || cfg.Reservations.NoShowCutoff != "18:00" {
		t.Errorf("reservations: %+v", cfg.Reservations)
	}
	p, err := cfg.CancellationPolicy()
	if err != nil || p == nil {
		t.Fatalf("policy: %v", err)
	}
	if p.Version != "2026-04" || len(p.Rows) != 3 || p.NoShow == nil || p.NoShow.Percent.String() != "100" {
		t.Fatalf("policy: %+v", p)
	}
	d := func(s string) sterad.Date {
		v, err := sterad.ParseDate(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for day, want := range map[string]int64{"2026-11-10": 0, "2026-11-14": 3600, "2026-11-20": 9000, "2026-11-21": 18000} {
		fee, _, err := p.Fee(sterad.NewAmount(18000, sterad.JPY), d("2026-11-21"), d(day))
		if err != nil || fee.Minor() != want {
			t.Errorf("cancelled %s: %s %v, want ¥%d", day, fee, err, want)
		}
	}

	programs, err := cfg.VoucherPrograms()
	if err != nil || len(programs) != 1 {
		t.Fatalf("voucher programs: %v %+v", err, programs)
	}
	want := sterad.VoucherProgram{ID: "OITA2016", Name: "おおいた宿泊券", FaceValue: sterad.NewAmount(5000, sterad.JPY), PerPersonNight: 4,
		MinPlanPerPersonNight: sterad.NewAmount(5000, sterad.JPY), ValidFrom: d("2016-07-19"), ValidTo: d("2016-09-30"),
		DirectBookingsOnly: true, ClaimDay: 10, NumberPattern: "^[0-9]{10}$"}
	got := programs[0]
	if got.ID != want.ID || got.Name != want.Name || got.FaceValue.Cmp(want.FaceValue) != 0 || got.PerPersonNight != 4 ||
		got.MinPlanPerPersonNight.Cmp(want.MinPlanPerPersonNight) != 0 || got.ValidFrom != want.ValidFrom || got.ValidTo != want.ValidTo ||
		!got.DirectBookingsOnly || got.ClaimDay != 10 || got.NumberPattern != want.NumberPattern {
		t.Errorf("program: %+v, want %+v", got, want)
	}
	// The FAQ's example through the configured program.
	res, err := sterad.ApplyVouchers(programs, sterad.VoucherCheckout{Stay: sterad.Stay{CheckIn: d("2016-08-01"), CheckOut: d("2016-08-02")},
		Guests: 1, Booking: "direct", Bill: sterad.Bill{RoomPlan: sterad.NewAmount(12800, sterad.JPY)},
		Vouchers: []sterad.VoucherUse{{Program: "OITA2016", Number: "0000000001", HolderMatches: true}, {Program: "OITA2016", Number: "0000000002", HolderMatches: true}}}, func(string, string) (bool, error) { return false, nil })
	if err != nil || res.Remainder.Minor() != 2800 {
		t.Errorf("¥12,800 with two vouchers: %+v %v", res, err)
	}
}

func TestReservationConfigDefaults(t *testing.T) {
	cfg := loadReservationConfig(t, "reservations: {noshow_cutoff: \"19:00\", retention: 72h}\n")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Reservations.HoldAlert.D() != 7*24*time.Hour {
		t.Errorf("hold_alert default: %v", cfg.Reservations.HoldAlert.D())
	}
	if p, err := cfg.CancellationPolicy(); p != nil || err != nil {
		t.Errorf("no policy configured: %+v %v", p, err)
	}
	if v, err := cfg.VoucherPrograms(); len(v) != 0 || err != nil {
		t.Errorf("no programs configured: %+v %v", v, err)
	}
	// of defaults to first_night; rows may come in any order.
	cfg = loadReservationConfig(t, `
reservations:
  cancellation_policy:
    version: v1
    rows: [{days_before: 0, percent: "100"}, {days_before: 3, percent: 33.5}]
    noshow: {percent: 100}
`)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if p, _ := cfg.CancellationPolicy(); p.Rows[1].Of != sterad.FeeOfFirstNight || p.Rows[1].Percent.String() != "33.5" {
		t.Errorf("policy: %+v", p)
	}
}

// Every problem of reservations: and vouchers: is reported at once, each
// naming its key.
func TestReservationConfigErrors(t *testing.T) {
	cfg := loadReservationConfig(t, `
reservations:
  noshow_cutoff: "6pm"
  hold_alert: 0s
  cancellation_policy:
    version: "2026-04"
    rows:
      - {days_before: 7, percent: 20, of: first_night}
      - {days_before: 7, percent: 50, of: first_night}
      - {days_before: 1, percent: 120, of: first_night}
      - {days_before: 2, percent: "20%", of: first_night}
      - {percent: 10, of: whole_stay}
    noshow: {percent: -1, of: first_night}
vouchers:
  - {id: OITA2016, name: "おおいた宿泊券", face_value: "5000.5", per_person_night: 0,
     min_plan_per_person_night: "-5000", valid_from: 2016-09-30, valid_to: 2016-07-19,
     direct_bookings_only: true, claim_day: 32, number_pattern: "^[0-9{10}$"}
  - {id: OITA2016, name: "", face_value: "5000", per_person_night: 4, valid_from: 2016-02-30, valid_to: 2016-09-30, claim_day: 10}
`)
	err := cfg.Validate()
	if err == nil {
		t.Fatal("an invalid configuration was accepted")
	}
	for _, want := range []string{
		`reservations.noshow_cutoff "6pm"`,
		"reservations.hold_alert must be more than zero",
		"reservations.cancellation_policy.rows[1]: days_before 7 overlaps rows[0]",
		"reservations.cancellation_policy.rows[2]: percent 120 is outside 0–100",
		`reservations.cancellation_policy.rows[3].percent: "20%" is not a number`,
		"reservations.cancellation_policy.rows[4].days_before: is required",
		`reservations.cancellation_policy.rows[4]: of "whole_stay" is unknown`,
		"reservations.cancellation_policy.noshow: percent -1 is outside 0–100",
		"vouchers[0].face_value (OITA2016): amount 5000.5 has a fraction",
		"vouchers[0].per_person_night (OITA2016):",
		"vouchers[0].min_plan_per_person_night (OITA2016): amount -5000 is negative",
		"vouchers[0].valid_to (OITA2016): 2016-07-19 is before valid_from 2016-09-30",
		"vouchers[0].claim_day (OITA2016): 32 is not a day of the month",
		"vouchers[0].number_pattern (OITA2016):",
		"vouchers[1].name (OITA2016): is required",
		`vouchers[1].valid_from (OITA2016): date "2016-02-30" is not a valid`,
		"vouchers[1].id (OITA2016): OITA2016 is also the id of vouchers[0]",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the errors do not say %q", want)
		}
	}
	// A row that cannot be read is reported once, by its key: no "no row
	// covers the arrival day" or "negative days" for rows[4].
	for _, not := range []string{"days_before -5 is negative", "no row covers", "face_value (OITA2016): must be more than zero", "vouchers[1].valid_to"} {
		if strings.Contains(err.Error(), not) {
			t.Errorf("a follow-on error %q:\n%v", not, err)
		}
	}
	if t.Failed() {
		t.Logf("errors:\n%v", err)
	}
	if _, err := cfg.CancellationPolicy(); err == nil {
		t.Error("CancellationPolicy returned an invalid policy")
	}
	if _, err := cfg.VoucherPrograms(); err == nil {
		t.Error("VoucherPrograms returned invalid programs")
	}
}

func TestReservationConfigUnknownKeys(t *testing.T) {
	for _, tt := range []struct{ yaml, key string }{
		{"reservations: {cancellation_policy: {version: v1, rows: [{days_befor: 0, percent: 100}], noshow: {percent: 100}}}\n", "days_befor"},
		{"reservations: {cancellation_policy: {version: v1, rows: [{days_before: 0, percent: 100}], noshow: {days_before: 0, percent: 100}}}\n", "days_before"},
		{"vouchers: [{id: X, face_valu: \"5000\"}]\n", "face_valu"},
	} {
		_, err := LoadConfig(writeFile(t, tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("unknown key %s: %v", tt.key, err)
		}
	}
}
