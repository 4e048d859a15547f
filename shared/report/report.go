// Package report defines the run report contract (runs/<execution>/report.json) and the
// per-batch outcome files the copier writes and the reporter reads.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"
)

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
	// Destination names the further destination (package destination) the object was not
	// written to; empty for the backup bucket and for restores.
	Destination string `json:"destination,omitempty"`
}

// Skip names one object the run deliberately left alone, and why.
type Skip struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// NoteWouldBeRemoved starts the note an exact restore's dry run gives each object it would remove.
const NoteWouldBeRemoved = "would be removed (exact restore): "

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
	// Destination is the further destination the batch wrote (package destination); empty
	// for the backup bucket and for restores.
	Destination string `json:"destination,omitempty"`
}

// Report is the contract of report.json and of the reporter's output, for backups and restores
// alike (a restore sets RestoredAt, TargetBucket, TargetPrefix and, when its input names one, RequestedBy). Every key is always present.
// report.json holds every failure, skip and note (its *Omitted counts are 0); the execution
// output holds as many of the first ones as fit in DefaultOutputListBytes, with FailuresOmitted,
// SkipsOmitted and NotesOmitted counting the rest (see Summary). Guards are a backup's
// guard verdicts; Withheld (deletionsWithheld) counts the deletions a tripped deletion guard kept
// from running, which count as accounted for.
type Report struct {
	Status       string `json:"status"`
	Error        string `json:"error"`
	Cause        string `json:"cause"`
	Execution    string `json:"execution"`
	StartedAt    string `json:"startedAt"`
	FinishedAt   string `json:"finishedAt"`
	SourceBucket string `json:"sourceBucket"`
	BackupBucket string `json:"backupBucket"`
	Prefix       string `json:"prefix"`
	RestoredAt   string `json:"restoredAt"`
	TargetBucket string `json:"targetBucket"`
	TargetPrefix string `json:"targetPrefix"`
	RequestedBy  string `json:"requestedBy"` // a restore's requestedBy input: who asked for it
	DryRun       bool   `json:"dryRun"`
	Listed       int64  `json:"listed"`
	New          int64  `json:"new"`
	Changed      int64  `json:"changed"`
	Unchanged    int64  `json:"unchanged"`
	ToDelete     int64  `json:"toDelete"`
	Kept         int64  `json:"kept"`
	Archived     int64  `json:"archived"`
	// Excluded counts the listed source objects a filter excluded (neither copied nor, unless
	// deleteExcluded, marked deleted); ExcludedByRule counts them by the rule that excluded them
	// (never nil; its counts sum to Excluded). ExcludedDeletions counts the keys the backup holds
	// and the source no longer has that a filter excludes: left alone, not marked deleted.
	// TagReads counts the GetObjectTagging requests the filters' tag rules needed.
	Excluded          int64            `json:"excluded"`
	ExcludedByRule    map[string]int64 `json:"excludedByRule"`
	ExcludedDeletions int64            `json:"excludedDeletions"`
	TagReads          int64            `json:"tagReads"`
	// MostChanged are the folders (first level below the run's prefix) with the most new,
	// changed and deleted keys, most first (report.DefaultTopChanges of them; backup).
	MostChanged     []FolderChanges `json:"mostChanged"`
	BackupObjects   int64           `json:"backupObjects"`
	BytesToCopy     int64           `json:"bytesToCopy"`
	Copied          int64           `json:"copied"`
	Deleted         int64           `json:"deleted"`
	Failed          int64           `json:"failed"`
	Skipped         int64           `json:"skipped"`
	AlreadyPresent  int64           `json:"alreadyPresent"`
	SourceChanged   int64           `json:"sourceChanged"`
	BytesCopied     int64           `json:"bytesCopied"`
	Retries         int64           `json:"retries"`
	Withheld        int64           `json:"deletionsWithheld"`
	Guards          []Guard         `json:"guards"`
	Batches         int64           `json:"batches"`
	FailedBatches   int64           `json:"failedBatches"`
	ListInvocations int             `json:"listInvocations"`
	// ListRanges is how many key-space ranges the backup was listed in (0: one sequence).
	ListRanges      int       `json:"listRanges"`
	ReportKey       string    `json:"reportKey"`
	Failures        []Failure `json:"failures"`
	FailuresOmitted int64     `json:"failuresOmitted"`
	Skips           []Skip    `json:"skips"`
	SkipsOmitted    int64     `json:"skipsOmitted"`
	Notes           []Note    `json:"notes"`
	NotesOmitted    int64     `json:"notesOmitted"`
	// Cost is the run's estimated cost at list prices (package shared/runcost says how).
	Cost Cost `json:"cost"`
	// Notifications is what became of each notification target (package shared/notify).
	Notifications []Notification `json:"notifications"`
	// Verify is a verify run's (restore drill's) own part (verify.go); null for backups and restores.
	Verify *Verify `json:"verify"`
	// Destinations are a backup's further destinations, one section each (destinations.go);
	// the counts above are the backup bucket's. Empty for restores and single-destination runs.
	Destinations []Destination `json:"destinations"`
}

// Cost is a run's estimated cost: the requests it made by kind, the Lambda compute, the state
// transitions, and their price at the list prices of Region (PriceTable, in US dollars).
type Cost struct {
	Region           string     `json:"region"`
	Requests         Requests   `json:"requests"`
	LambdaGBSeconds  float64    `json:"lambdaGBSeconds"`
	LambdaRequests   int64      `json:"lambdaRequests"`
	StateTransitions int64      `json:"stateTransitions"`
	USD              float64    `json:"usd"`
	Breakdown        CostItems  `json:"breakdown"`
	Prices           PriceTable `json:"prices"`
	Basis            string     `json:"basis"` // how the figures were estimated
}

// Requests counts S3 requests by kind (each kind is billed at its own price).
type Requests struct {
	List   int64 `json:"list"`
	Put    int64 `json:"put"` // PUT, COPY and POST (CopyObject, UploadPartCopy, batch and outcome files)
	Get    int64 `json:"get"`
	Head   int64 `json:"head"`
	Delete int64 `json:"delete"`
}

// CostItems is the US-dollar figure of each part of Cost.USD.
type CostItems struct {
	S3Requests       float64 `json:"s3Requests"`
	LambdaCompute    float64 `json:"lambdaCompute"`
	LambdaRequests   float64 `json:"lambdaRequests"`
	StateTransitions float64 `json:"stateTransitions"`
}

// PriceTable holds list prices in US dollars.
type PriceTable struct {
	PutPer1000        float64 `json:"putPer1000"`        // S3 PUT, COPY, POST, LIST
	ListPer1000       float64 `json:"listPer1000"`       // S3 LIST
	GetPer1000        float64 `json:"getPer1000"`        // S3 GET and HEAD (and all other requests)
	DeletePer1000     float64 `json:"deletePer1000"`     // S3 DELETE (free)
	LambdaGBSecond    float64 `json:"lambdaGBSecond"`    // Lambda on arm64
	LambdaPerMillion  float64 `json:"lambdaPerMillion"`  // Lambda requests
	TransitionPer1000 float64 `json:"transitionPer1000"` // Step Functions Standard
}

// Notification is what became of one notification target: Status "sent" or "error" (with the
// error), after Attempts attempts. Target names it with its secrets removed (no user
// information, path or query: a webhook token never reaches a report).
type Notification struct {
	Target   string `json:"target"`
	Kind     string `json:"kind"` // "webhook", "chat" (a shoutrrr URL), "heartbeat" or "sns"
	Status   string `json:"status"`
	Error    string `json:"error,omitempty"`
	Attempts int    `json:"attempts"`
}

// Notification statuses.
const (
	NotificationSent  = "sent"
	NotificationError = "error"
)

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
	// Destination names the further destination the guard judged; empty for the backup bucket.
	Destination string `json:"destination,omitempty"`
}

// Limits of the execution output, which Step Functions caps at 256 KiB (a larger output ends the
// execution with States.DataLimitExceeded, which no Catch handles).
const (
	// DefaultOutputListBytes bounds the JSON of the failures, skips and notes in the output,
	// together: failures first, then skips, then notes, each list cut at its first entry that
	// does not fit.
	DefaultOutputListBytes = 64 << 10
	// MaxTextInOutput caps a failure's error, a skip's reason and a note in the output.
	MaxTextInOutput = 512
	// MaxCauseInOutput caps the cause in the output.
	MaxCauseInOutput = 4 << 10
)

// Summary returns r cut for the execution output: the cause and each entry's text shortened, and
// the failures, skips and notes cut to the first ones that fit in DefaultOutputListBytes; each
// *Omitted count grows by the entries cut. Everything else (at most a few KiB: counts, names,
// the guards) is kept, so the output stays far below 256 KiB whatever the run.
func (r Report) Summary() Report {
	s := r
	s.Cause = Shorten(r.Cause, MaxCauseInOutput)
	budget := DefaultOutputListBytes
	s.Failures = fit(r.Failures, &budget)
	s.Skips = fit(r.Skips, &budget)
	s.Notes = fit(r.Notes, &budget)
	s.FailuresOmitted += int64(len(r.Failures) - len(s.Failures))
	s.SkipsOmitted += int64(len(r.Skips) - len(s.Skips))
	s.NotesOmitted += int64(len(r.Notes) - len(s.Notes))
	return s
}

// fit returns the longest prefix of in (each entry shortened) whose JSON fits in *budget bytes,
// and takes its size from the budget. Once the budget is spent, later lists get nothing.
func fit[T Entry[T]](in []T, budget *int) []T {
	out := make([]T, 0, min(len(in), 64))
	for _, v := range in {
		v = v.Short()
		b, err := json.Marshal(v)
		if err != nil || len(b)+1 > *budget {
			*budget = 0
			break
		}
		*budget -= len(b) + 1
		out = append(out, v)
	}
	return out
}

// Entry is a failure, a skip or a note.
type Entry[T any] interface {
	Failure | Skip | Note
	// Short is the entry as the execution output carries it: its text cut to MaxTextInOutput.
	Short() T
}

// Short is f with its error cut to MaxTextInOutput.
func (f Failure) Short() Failure { f.Error = Shorten(f.Error, MaxTextInOutput); return f }

// Short is s with its reason cut to MaxTextInOutput.
func (s Skip) Short() Skip { s.Reason = Shorten(s.Reason, MaxTextInOutput); return s }

// Short is n with its note cut to MaxTextInOutput.
func (n Note) Short() Note { n.Note = Shorten(n.Note, MaxTextInOutput); return n }

// Shorten cuts s to at most max bytes on a character boundary, marking the cut with "…".
func Shorten(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// Encode writes r as JSON (one key per line, in the order of Report's fields), taking the
// elements of each list named in lists ("failures", "skips", "notes") from its function instead
// of from r: the function writes the elements' JSON, comma-separated, and may stream them from
// anywhere (the reporter streams them from disk, so that a report of millions of failures never
// sits in memory). The result decodes into the same Report as json.Marshal of r with those lists.
func (r Report) Encode(w io.Writer, lists map[string]func(io.Writer) error) error {
	bw := bufio.NewWriter(w)
	v, t := reflect.ValueOf(r), reflect.TypeOf(r)
	bw.WriteString("{")
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if i > 0 {
			bw.WriteString(",")
		}
		fmt.Fprintf(bw, "\n  %q: ", name) // field names are plain ASCII: %q is their JSON form
		if stream := lists[name]; stream != nil {
			bw.WriteString("[")
			if err := stream(bw); err != nil {
				return fmt.Errorf("report %s: %w", name, err)
			}
			bw.WriteString("\n  ]")
			continue
		}
		b, err := json.Marshal(v.Field(i).Interface())
		if err != nil {
			return fmt.Errorf("report %s: %w", name, err)
		}
		bw.Write(b)
	}
	bw.WriteString("\n}\n")
	return bw.Flush()
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
	// Backup filters (package filter): Listed = New + Changed + Unchanged + Excluded, and
	// ExcludedByRule sums to Excluded. See Report for each count's meaning.
	Excluded          int64            `json:"excluded"`
	ExcludedByRule    map[string]int64 `json:"excludedByRule,omitempty"`
	ExcludedDeletions int64            `json:"excludedDeletions"`
	TagReads          int64            `json:"tagReads"`
	// Changes keeps the folders with the most new, changed and deleted keys (backup).
	Changes     TopChanges `json:"changes"`
	BytesToCopy int64      `json:"bytesToCopy"`
	Retries     int64      `json:"retries"`          // request retries while listing or planning
	Invocations int        `json:"invocations"`      // lister or planner invocations so far
	Ranges      int        `json:"ranges,omitempty"` // key-space ranges listed (set by the plan; 0: one sequence)
	// Batches is how many batch files this execution's successful invocations wrote: exactly
	// batches 0 … Batches-1 belong to the run, whatever a failed attempt left behind.
	Batches int `json:"batches"`
	// Destinations are the further destinations' counts, in the order of the setting.
	Destinations []DestinationTotals `json:"destinations,omitempty"`
}

// Cursor is the loop state the lister and the planner return and get back on their next
// invocation: the Totals everyone reads, and a Position that only its owner reads.
type Cursor[P any] struct {
	Totals   Totals `json:"totals"`
	Position P      `json:"position"`
}

// Add adds the totals of another lister's slice of the key space (a key-space range, whose keys
// all come after the ones t counted) to t.
func (t *Totals) Add(o Totals) {
	t.Listed += o.Listed
	t.New += o.New
	t.Changed += o.Changed
	t.Unchanged += o.Unchanged
	t.ToDelete += o.ToDelete
	t.Kept += o.Kept
	t.Archived += o.Archived
	t.Ambiguous += o.Ambiguous
	t.BackupObjects += o.BackupObjects
	t.Excluded += o.Excluded
	for rule, n := range o.ExcludedByRule {
		if t.ExcludedByRule == nil {
			t.ExcludedByRule = map[string]int64{}
		}
		t.ExcludedByRule[rule] += n
	}
	t.ExcludedDeletions += o.ExcludedDeletions
	t.TagReads += o.TagReads
	t.Changes.Merge(o.Changes)
	t.BytesToCopy += o.BytesToCopy
	t.Retries += o.Retries
	t.Invocations += o.Invocations
	t.Batches += o.Batches
	for _, d := range o.Destinations {
		i := slices.IndexFunc(t.Destinations, func(e DestinationTotals) bool { return e.Name == d.Name })
		if i < 0 {
			t.Destinations = append(t.Destinations, DestinationTotals{Name: d.Name, Bucket: d.Bucket})
			i = len(t.Destinations) - 1
		}
		t.Destinations[i].add(d)
	}
}
