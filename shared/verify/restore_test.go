package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/restoreinput"
)

// The restore sample is the bottom n priorities: the same keys whatever order the candidates
// come in, and a different pick for another seed.
func TestPicker(t *testing.T) {
	keys := make([]string, 500)
	for i := range keys {
		keys[i] = fmt.Sprintf("k/%04d", i)
	}
	pick := func(seed int64, order []string) []string {
		p := &picker{n: 20}
		for _, k := range order {
			p.offer(candidate{Key: k, P: priority(seed, k)})
		}
		var out []string
		for _, c := range p.picks {
			out = append(out, c.Key)
		}
		slices.Sort(out)
		return out
	}
	reversed := slices.Clone(keys)
	slices.Reverse(reversed)
	a, b, c := pick(7, keys), pick(7, reversed), pick(8, keys)
	if len(a) != 20 || !slices.Equal(a, b) {
		t.Fatalf("seed 7: %v in key order, %v reversed", a, b)
	}
	if slices.Equal(a, c) {
		t.Fatalf("seeds 7 and 8 picked the same keys %v", a)
	}
}

func TestRestoreInput(t *testing.T) {
	tests := []struct {
		input   string
		wantErr bool
		want    *int64
	}{
		{`{}`, false, nil},
		{`{"restoreSample": 0}`, false, new(int64)},
		{fmt.Sprintf(`{"restoreSample": %d, "thaw": true}`, MaxRestoreSample), false, func() *int64 { n := int64(MaxRestoreSample); return &n }()},
		{fmt.Sprintf(`{"restoreSample": %d}`, MaxRestoreSample+1), true, nil},
		{`{"restoreSample": -1}`, true, nil},
	}
	for _, tt := range tests {
		in, _, err := ParseInput([]byte(tt.input))
		var ii *fault.InvalidInput
		if tt.wantErr != (err != nil) || (err != nil && !errors.As(err, &ii)) {
			t.Fatalf("%s: %v", tt.input, err)
		}
		if !tt.wantErr && (tt.want == nil) != (in.RestoreSample == nil) || (tt.want != nil && in.RestoreSample != nil && *tt.want != *in.RestoreSample) {
			t.Fatalf("%s: restoreSample %v", tt.input, in.RestoreSample)
		}
	}
}

// A drill's restore execution sorts beside it; a name without a time gets a stable one.
func TestRestoreName(t *testing.T) {
	if got := RestoreName("verify-20261202T000000Z-bbbb"); got != "restore-20261202T000000Z-bbbb" {
		t.Fatal(got)
	}
	if a, b := RestoreName("weekly-drill"), RestoreName("weekly-drill"); a != b || len(a) > 80 || a[:14] != "restore-drill-" {
		t.Fatal(a, b)
	}
}

// Step Functions' dates arrive as epoch milliseconds (.sync results) or RFC 3339 text.
func TestRestoreOutcomeDates(t *testing.T) {
	var o RestoreOutcome
	if err := json.Unmarshal([]byte(`{"status":"SUCCEEDED","startDate":1764633600000,"stopDate":"2025-12-02T00:00:01.500Z"}`), &o); err != nil {
		t.Fatal(err)
	}
	if d := o.StopDate.Sub(o.StartDate.Time); d != 1500*time.Millisecond {
		t.Fatalf("duration %v", d)
	}
	cur := &Cursor{Tally: tallyWithRestore()}
	(&Handler{}).restored(cur, &RestoreOutcome{Error: "States.TaskFailed", Cause: `{"Status":"FAILED","StartDate":1000,"StopDate":4000,"Error":"BackupIncomplete"}`})
	if rs := cur.Tally.Restore; rs.Status != "FAILED" || rs.Seconds != 3 || rs.Error != "States.TaskFailed" || cur.Phase != PhaseCompare {
		t.Fatalf("%+v", rs)
	}
}

// The thaw estimate prices each class at its Standard-tier list price and waits for the slowest.
func TestThawEstimate(t *testing.T) {
	e := thawEstimate(map[string][2]int64{"GLACIER": {1000, 2e9}, "DEEP_ARCHIVE": {1000, 1e9}})
	if want := 2*0.01 + 0.05 + 1*0.02 + 0.10; e.USD != want || e.Objects != 2000 || e.WaitTime != (12*time.Hour).String() || e.Tier != restoreinput.DefaultThawTier {
		t.Fatalf("%+v", e)
	}
	if thawEstimate(nil) != nil {
		t.Fatal("an estimate without archived objects")
	}
}

func tallyWithRestore() (v report.Verify) {
	v.Restore = &report.VerifyRestore{}
	return v
}
