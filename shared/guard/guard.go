// Package guard holds a backup's two guards and their defaults: the deletion guard (a run would
// mark an unusual share of the backup deleted) and the change guard (an unusual share of the
// backup's objects was rewritten in one run, as ransomware does). Each trips when the share is
// above its percentage and the count above its floor. Neither ever stops a copy: copies only add
// versions. A tripped deletion guard withholds the run's deletions; either ends the run FAILED.
package guard

import (
	"fmt"
	"math"
	"reflect"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/report"
)

// Defaults of the guard settings (MAX_DELETE_PERCENT, DELETE_GUARD_FLOOR, MAX_CHANGE_PERCENT,
// CHANGE_GUARD_FLOOR; the CDK settings of the same names in camel case).
const (
	// DefaultMaxDeletePercent is the largest share of the backup's current objects a run may mark
	// deleted.
	DefaultMaxDeletePercent = 25
	// DefaultDeleteFloor is how many deletions always pass, whatever their share (like rclone's
	// --max-delete count): a handful of deletions in a small bucket is not a mass deletion.
	DefaultDeleteFloor = 10
	// DefaultMaxChangePercent is the largest share of the backup's current objects that may
	// change in one run. Rewrites in place are more common in normal use than deletions (exports
	// that overwrite their files), so it is looser than the deletion guard; a ransomware run that
	// encrypts a bucket changes nearly all of it.
	DefaultMaxChangePercent = 50
	// DefaultChangeFloor is how many changed objects always pass, whatever their share.
	DefaultChangeFloor = 10
	// MinFloor is the smallest floor: one deletion, or one change, never trips a guard.
	MinFloor = 1
)

// Guard names, as the report's guards carry them.
const (
	Deletion = "deletion"
	Change   = "change"
)

// Limit is one guard's setting: it trips when a run touches more than MaxPercent (0–100) of the
// backup's current objects and more than Floor objects.
type Limit struct {
	MaxPercent float64
	Floor      int64
}

// Limits are both guards' settings.
type Limits struct {
	Delete, Change Limit
}

// DefaultLimits are the defaults of both guards.
func DefaultLimits() Limits {
	return Limits{
		Delete: Limit{MaxPercent: DefaultMaxDeletePercent, Floor: DefaultDeleteFloor},
		Change: Limit{MaxPercent: DefaultMaxChangePercent, Floor: DefaultChangeFloor},
	}
}

// Check judges a finished listing: the deletion guard on t.ToDelete and the change guard on
// t.Changed, both against t.BackupObjects.
func Check(t report.Totals, l Limits) (deletion, change report.Guard) {
	deletion = verdict(Deletion, t.ToDelete, t.BackupObjects, l.Delete)
	if deletion.Tripped {
		err := &fault.DeletionGuardTripped{Msg: fmt.Sprintf(
			"this run would mark %d of the backup's %d current objects deleted (%s), more than the %s allowed (and more than %d, the floor below which deletions always pass); "+
				"its deletions were withheld: nothing was marked deleted, while new and changed objects are copied as usual. "+
				`If the deletions are intended, start an execution with {"maxDeletePercent": 100}`,
			t.ToDelete, t.BackupObjects, percent(deletion.Percent), percent(l.Delete.MaxPercent), l.Delete.Floor)}
		deletion.Error, deletion.Message = Name(err), err.Error()
	}
	change = verdict(Change, t.Changed, t.BackupObjects, l.Change)
	if change.Tripped {
		err := &fault.MassChangeDetected{Msg: fmt.Sprintf(
			"%d of the backup's %d current objects changed in this run (%s), more than the %s allowed (and more than %d, the floor below which changes always pass): "+
				"a mass rewrite, such as ransomware encrypting files in place, looks like this. The new contents are backed up as new versions; "+
				"the previous ones stay as noncurrent versions, restorable as of any moment before this run. "+
				`If the changes are intended, nothing needs redoing: the next run finds them unchanged (to let such a run succeed, start it with {"maxChangePercent": 100})`,
			t.Changed, t.BackupObjects, percent(change.Percent), percent(l.Change.MaxPercent), l.Change.Floor)}
		change.Error, change.Message = Name(err), err.Error()
	}
	return deletion, change
}

func verdict(name string, count, of int64, l Limit) report.Guard {
	g := report.Guard{Name: name, Count: count, Of: of, MaxPercent: l.MaxPercent, Floor: l.Floor}
	if count == 0 || of == 0 {
		return g
	}
	share := float64(count) * 100 / float64(of)
	g.Percent = math.Round(share*10) / 10
	g.Tripped = count > l.Floor && share > l.MaxPercent
	return g
}

func percent(p float64) string { return fmt.Sprintf("%g%%", p) }

// Name is the Step Functions error name of a named error: its Go type's name, as aws-lambda-go
// reports it.
func Name(err error) string {
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}
