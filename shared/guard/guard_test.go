package guard

import (
	"strings"
	"testing"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/report"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name                         string
		totals                       report.Totals
		limits                       Limits
		wantDeletion, wantChange     bool
		wantDeletionMsg, wantChngMsg string
	}{
		{name: "nothing to judge", totals: report.Totals{}, limits: DefaultLimits()},
		{name: "first backup: empty backup", totals: report.Totals{New: 500}, limits: DefaultLimits()},
		{name: "one deletion of one object", totals: report.Totals{ToDelete: 1, BackupObjects: 1}, limits: Limits{Delete: Limit{MaxPercent: 0, Floor: MinFloor}, Change: Limit{Floor: MinFloor}}},
		{name: "deletions at the floor", totals: report.Totals{ToDelete: 10, BackupObjects: 10}, limits: DefaultLimits()},
		{name: "deletions above floor and share", totals: report.Totals{ToDelete: 11, BackupObjects: 20}, limits: DefaultLimits(),
			wantDeletion: true, wantDeletionMsg: `mark 11 of the backup's 20 current objects deleted (55%), more than the 25% allowed (and more than 10`},
		{name: "deletion share exactly at the limit", totals: report.Totals{ToDelete: 25, BackupObjects: 100}, limits: DefaultLimits()},
		{name: "deletion share just above the limit", totals: report.Totals{ToDelete: 26, BackupObjects: 100}, limits: DefaultLimits(), wantDeletion: true, wantDeletionMsg: "(26%)"},
		{name: "100 accepts every deletion", totals: report.Totals{ToDelete: 100, BackupObjects: 100}, limits: Limits{Delete: Limit{MaxPercent: 100, Floor: 1}, Change: Limit{MaxPercent: 100, Floor: 1}}},
		{name: "mass change", totals: report.Totals{Changed: 90, BackupObjects: 100}, limits: DefaultLimits(),
			wantChange: true, wantChngMsg: "90 of the backup's 100 current objects changed in this run (90%), more than the 50% allowed"},
		{name: "both", totals: report.Totals{Changed: 40, ToDelete: 40, BackupObjects: 60}, limits: DefaultLimits(), wantDeletion: true, wantChange: true},
		{name: "changes at the floor", totals: report.Totals{Changed: 10, BackupObjects: 10}, limits: DefaultLimits()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			del, chg := Check(tt.totals, tt.limits)
			if del.Name != Deletion || chg.Name != Change || del.Count != tt.totals.ToDelete || chg.Count != tt.totals.Changed || del.Of != tt.totals.BackupObjects {
				t.Fatalf("verdicts %+v %+v", del, chg)
			}
			if del.Tripped != tt.wantDeletion || chg.Tripped != tt.wantChange {
				t.Fatalf("tripped: deletion %v change %v; want %v %v", del.Tripped, chg.Tripped, tt.wantDeletion, tt.wantChange)
			}
			if del.Tripped {
				if del.Error != "DeletionGuardTripped" || !strings.Contains(del.Message, tt.wantDeletionMsg) || !strings.Contains(del.Message, `{"maxDeletePercent": 100}`) {
					t.Errorf("deletion verdict %+v", del)
				}
			} else if del.Error != "" || del.Message != "" {
				t.Errorf("untripped deletion verdict carries %q %q", del.Error, del.Message)
			}
			if chg.Tripped {
				if chg.Error != "MassChangeDetected" || !strings.Contains(chg.Message, tt.wantChngMsg) || !strings.Contains(chg.Message, `{"maxChangePercent": 100}`) {
					t.Errorf("change verdict %+v", chg)
				}
			} else if chg.Error != "" || chg.Message != "" {
				t.Errorf("untripped change verdict carries %q %q", chg.Error, chg.Message)
			}
		})
	}
}

// The names in the verdicts are the fault types' names, which is how Step Functions names errors.
func TestName(t *testing.T) {
	if got := Name(&fault.DeletionGuardTripped{}); got != "DeletionGuardTripped" {
		t.Errorf("Name = %q", got)
	}
	if got := Name(&fault.MassChangeDetected{}); got != "MassChangeDetected" {
		t.Errorf("Name = %q", got)
	}
}

func TestPercentRounded(t *testing.T) {
	del, _ := Check(report.Totals{ToDelete: 1, BackupObjects: 3}, DefaultLimits())
	if del.Percent != 33.3 {
		t.Errorf("percent %v, want 33.3", del.Percent)
	}
}
