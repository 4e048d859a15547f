package reporter

import (
	"github.com/bucketvault/bucketvault/shared/report"
)

// destinationIndex is the index of the further destination named name in r's sections, or -1.
func destinationIndex(r *report.Report, name string) int {
	for i := range r.Destinations {
		if r.Destinations[i].Name == name {
			return i
		}
	}
	return -1
}

// destinationProblems names what went wrong with each further destination (report.Destination
// Problem), and the run's error name for them: a tripped guard's when that is all that went
// wrong with every one of them, BackupIncomplete otherwise. Before the copy phase only a
// destination that could not be listed is a problem (the run fails for its own reason anyway).
func destinationProblems(r *report.Report, copyPhase bool) (problems []string, errorName string) {
	for i := range r.Destinations {
		d := &r.Destinations[i]
		if !copyPhase && d.Error == "" {
			continue
		}
		p := d.Problem()
		if p == "" {
			continue
		}
		problems = append(problems, p)
		name := "BackupIncomplete"
		if g := trippedOnly(d); g != nil {
			name = g.Error
		}
		if errorName != "" && errorName != name {
			name = "BackupIncomplete"
		}
		errorName = name
	}
	return problems, errorName
}

// trippedOnly is d's tripped guard when nothing else went wrong with d.
func trippedOnly(d *report.Destination) *report.Guard {
	if d.Error != "" || d.Failed > 0 || d.FailedBatches > 0 || d.Copied+d.Deleted+d.Failed+d.Skipped+d.Withheld != d.New+d.Changed+d.ToDelete {
		return nil
	}
	for i := range d.Guards {
		if d.Guards[i].Tripped {
			return &d.Guards[i]
		}
	}
	return nil
}
