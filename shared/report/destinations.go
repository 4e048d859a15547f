package report

import "fmt"

// DestinationTotals are one further destination's listing counts (package destination): the
// source's keys sorted against that destination's own listing. Error, when set, says why the
// destination could not be listed (or checked): the run then wrote nothing more to it.
type DestinationTotals struct {
	Name          string `json:"name"`
	Bucket        string `json:"bucket"`
	New           int64  `json:"new"`
	Changed       int64  `json:"changed"`
	Unchanged     int64  `json:"unchanged"`
	ToDelete      int64  `json:"toDelete"`
	Archived      int64  `json:"archived"`
	BackupObjects int64  `json:"backupObjects"`
	BytesToCopy   int64  `json:"bytesToCopy"`
	Error         string `json:"error,omitempty"`
}

func (t *DestinationTotals) add(o DestinationTotals) {
	t.New += o.New
	t.Changed += o.Changed
	t.Unchanged += o.Unchanged
	t.ToDelete += o.ToDelete
	t.Archived += o.Archived
	t.BackupObjects += o.BackupObjects
	t.BytesToCopy += o.BytesToCopy
	if t.Error == "" {
		t.Error = o.Error
	}
}

// Destination is a backup report's section for one further destination: what its listing
// found, what its batches did, and its guards. Counts add up as the report's own do:
// New + Changed + ToDelete = Copied + Deleted + Failed + Skipped + Withheld.
type Destination struct {
	DestinationTotals
	Copied         int64   `json:"copied"`
	Deleted        int64   `json:"deleted"`
	Failed         int64   `json:"failed"`
	Skipped        int64   `json:"skipped"`
	AlreadyPresent int64   `json:"alreadyPresent"`
	BytesCopied    int64   `json:"bytesCopied"`
	Withheld       int64   `json:"deletionsWithheld"`
	Batches        int64   `json:"batches"`
	FailedBatches  int64   `json:"failedBatches"`
	Guards         []Guard `json:"guards"`
}

// AddOutcome adds one of the destination's batch outcomes to its counts.
func (d *Destination) AddOutcome(out Outcome) {
	d.Batches++
	d.Copied += int64(out.Copied)
	d.Deleted += int64(out.Deleted)
	d.Failed += int64(out.Failed)
	d.Skipped += int64(out.Skipped)
	d.AlreadyPresent += int64(out.AlreadyPresent)
	d.BytesCopied += out.BytesCopied
}

// Problem says what went wrong with the destination, or "" when its part of the run is
// complete: it could not be listed, objects were not written, a guard tripped, or its counts
// do not add up.
func (d *Destination) Problem() string {
	planned := d.New + d.Changed + d.ToDelete
	accounted := d.Copied + d.Deleted + d.Failed + d.Skipped + d.Withheld
	switch {
	case d.Error != "":
		return fmt.Sprintf("destination %q (%s) was not backed up: %s", d.Name, d.Bucket, d.Error)
	case d.Failed > 0 || d.FailedBatches > 0:
		return fmt.Sprintf("destination %q (%s): %d objects were not written (%d of %d batches failed)", d.Name, d.Bucket, d.Failed, d.FailedBatches, d.Batches)
	case accounted != planned:
		return fmt.Sprintf("destination %q (%s): counts do not add up: %d planned (new %d + changed %d + deletions %d) but %d accounted for (copied %d + deleted %d + failed %d + skipped %d + deletions withheld %d)",
			d.Name, d.Bucket, planned, d.New, d.Changed, d.ToDelete, accounted, d.Copied, d.Deleted, d.Failed, d.Skipped, d.Withheld)
	}
	for _, g := range d.Guards {
		if g.Tripped {
			return fmt.Sprintf("destination %q (%s): %s: %s", d.Name, d.Bucket, g.Error, g.Message)
		}
	}
	return ""
}
