// Package report defines the run report contract (runs/<execution>/report.json) and the
// per-batch outcome files the copier writes and the reporter reads.
package report

// Status values of a report.
const (
	Succeeded = "SUCCEEDED"
	Failed    = "FAILED"
)

// Failure names one object that was not backed up (or restored), with its error.
type Failure struct {
	Key   string `json:"key"`
	Op    string `json:"op"`
	Error string `json:"error"`
	Batch string `json:"batch,omitempty"`
}

// Skip names one object the run deliberately left alone, and why.
type Skip struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// Note is something a person should know about one key that was handled (not a failure, not a skip).
type Note struct {
	Key  string `json:"key"`
	Note string `json:"note"`
}

// Outcome is what one copier invocation did with one batch.
type Outcome struct {
	BatchKey       string    `json:"batchKey"`
	Items          int       `json:"items"`
	Copied         int       `json:"copied"`
	Deleted        int       `json:"deleted"`
	Failed         int       `json:"failed"`
	Skipped        int       `json:"skipped"`
	AlreadyPresent int       `json:"alreadyPresent"`
	SourceChanged  int       `json:"sourceChanged"`
	BytesCopied    int64     `json:"bytesCopied"`
	Retries        int64     `json:"retries"`
	Failures       []Failure `json:"failures"`
	Skips          []Skip    `json:"skips"`
	Notes          []Note    `json:"notes,omitempty"`
}

// Report is the contract of report.json and of the reporter's output, for backups and restores
// alike (a restore sets RestoredAt, TargetBucket and TargetPrefix). Every key is always present. In the execution output Failures holds at most the first MaxFailuresInOutput with
// FailuresOmitted counting the rest; report.json always holds all of them. Guards are a backup's
// guard verdicts; Withheld (deletionsWithheld) counts the deletions a tripped deletion guard kept
// from running, which count as accounted for.
type Report struct {
	Status          string    `json:"status"`
	Error           string    `json:"error"`
	Cause           string    `json:"cause"`
	Execution       string    `json:"execution"`
	StartedAt       string    `json:"startedAt"`
	FinishedAt      string    `json:"finishedAt"`
	SourceBucket    string    `json:"sourceBucket"`
	BackupBucket    string    `json:"backupBucket"`
	Prefix          string    `json:"prefix"`
	RestoredAt      string    `json:"restoredAt"`
	TargetBucket    string    `json:"targetBucket"`
	TargetPrefix    string    `json:"targetPrefix"`
	DryRun          bool      `json:"dryRun"`
	Listed          int64     `json:"listed"`
	New             int64     `json:"new"`
	Changed         int64     `json:"changed"`
	Unchanged       int64     `json:"unchanged"`
	ToDelete        int64     `json:"toDelete"`
	Kept            int64     `json:"kept"`
	Archived        int64     `json:"archived"`
	BackupObjects   int64     `json:"backupObjects"`
	BytesToCopy     int64     `json:"bytesToCopy"`
	Copied          int64     `json:"copied"`
	Deleted         int64     `json:"deleted"`
	Failed          int64     `json:"failed"`
	Skipped         int64     `json:"skipped"`
	AlreadyPresent  int64     `json:"alreadyPresent"`
	SourceChanged   int64     `json:"sourceChanged"`
	BytesCopied     int64     `json:"bytesCopied"`
	Retries         int64     `json:"retries"`
	Withheld        int64     `json:"deletionsWithheld"`
	Guards          []Guard   `json:"guards"`
	Batches         int64     `json:"batches"`
	FailedBatches   int64     `json:"failedBatches"`
	ListInvocations int       `json:"listInvocations"`
	ReportKey       string    `json:"reportKey"`
	Failures        []Failure `json:"failures"`
	FailuresOmitted int64     `json:"failuresOmitted"`
	Skips           []Skip    `json:"skips"`
	Notes           []Note    `json:"notes"`
}

// Guard is one backup guard's verdict on a run: it trips when the run touches more than
// MaxPercent of the backup's current objects and more than Floor objects. A tripped guard ends the
// run FAILED with Error (the copies are made either way; a tripped deletion guard withholds the
// deletions).
type Guard struct {
	Name       string  `json:"name"`       // "deletion" or "change"
	Count      int64   `json:"count"`      // deletions, or changed objects, in this run
	Of         int64   `json:"of"`         // the backup's current objects (within the run's prefix)
	Percent    float64 `json:"percent"`    // Count as a share of Of
	MaxPercent float64 `json:"maxPercent"` // the limit this run applied
	Floor      int64   `json:"floor"`      // at most this many never trip the guard
	Tripped    bool    `json:"tripped"`
	Error      string  `json:"error"`   // the execution's error name when tripped
	Message    string  `json:"message"` // what tripped and how to accept it, when tripped
}

// MaxFailuresInOutput caps the failures carried in the execution output (256 KiB state limit).
const MaxFailuresInOutput = 100

// Summary returns r with failures and skips cut for the execution output.
func (r Report) Summary() Report {
	s := r
	n := min(len(r.Failures), MaxFailuresInOutput)
	s.FailuresOmitted += int64(len(r.Failures) - n)
	s.Failures = append([]Failure{}, r.Failures[:n]...)
	for i := range s.Failures {
		if len(s.Failures[i].Error) > 512 {
			s.Failures[i].Error = s.Failures[i].Error[:512] + "…"
		}
	}
	if len(s.Skips) > MaxFailuresInOutput {
		s.Skips = s.Skips[:MaxFailuresInOutput]
	}
	if len(s.Notes) > MaxFailuresInOutput {
		s.Notes = s.Notes[:MaxFailuresInOutput]
	}
	return s
}

// Totals are the planning counts that the lister (backup) or the planner (restore) carries from
// one invocation to the next and that the reporter reads. This is their one declaration; every
// reader decodes it strictly (package strictjson), so a renamed field fails instead of reading 0.
type Totals struct {
	Listed        int64 `json:"listed"`        // source keys (backup) or versions current at the moment (restore)
	New           int64 `json:"new"`           // to copy: absent from the destination
	Changed       int64 `json:"changed"`       // to copy: the destination differs
	Unchanged     int64 `json:"unchanged"`     // nothing to do
	ToDelete      int64 `json:"toDelete"`      // backup: keys to mark deleted
	Kept          int64 `json:"kept"`          // restore: differing target objects left alone
	Archived      int64 `json:"archived"`      // objects in an archive storage class
	Ambiguous     int64 `json:"ambiguous"`     // restore: keys whose state at the moment was a same-second tie
	BackupObjects int64 `json:"backupObjects"` // backup: current objects in the backup
	BytesToCopy   int64 `json:"bytesToCopy"`
	Retries       int64 `json:"retries"`     // request retries while listing or planning
	Invocations   int   `json:"invocations"` // lister or planner invocations so far
	// Batches is how many batch files this execution's successful invocations wrote: exactly
	// batches 0 … Batches-1 belong to the run, whatever a failed attempt left behind.
	Batches int `json:"batches"`
}

// Cursor is the loop state the lister and the planner return and get back on their next
// invocation: the Totals everyone reads, and a Position that only its owner reads.
type Cursor[P any] struct {
	Totals   Totals `json:"totals"`
	Position P      `json:"position"`
}
