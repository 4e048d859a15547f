package s3copy

import (
	"errors"
	"fmt"
)

// ErrOutcomeUnknown is matched (errors.Is) by every OutcomeUnknownError.
var ErrOutcomeUnknown = errors.New("outcome of a write unknown")

// OutcomeUnknownError means a write into the destination failed and whether it landed anyway (a
// lost response) could not be found out. Writing again could add a second version, so the
// object is failed instead: the next run, or a retried batch in verify mode, settles it.
type OutcomeUnknownError struct {
	Bucket, Key string
	// Write is the failed write's error; Check is why its outcome could not be found out.
	Write, Check error
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("s3://%s/%s: write failed (%v) and whether it landed is unknown (%v); not written again, so that no second version is added",
		e.Bucket, e.Key, e.Write, e.Check)
}

// Unwrap returns both causes.
func (e *OutcomeUnknownError) Unwrap() []error { return []error{e.Write, e.Check} }

// Is matches ErrOutcomeUnknown.
func (e *OutcomeUnknownError) Is(target error) bool { return target == ErrOutcomeUnknown }
