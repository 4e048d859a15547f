package reporter

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/bucketvault/bucketvault/shared/report"
)

// lists are a report's failures, skips and notes while the reporter collects them: on disk,
// never whole in memory.
type lists struct {
	failures *spill[report.Failure]
	skips    *spill[report.Skip]
	notes    *spill[report.Note]
}

func newLists(dir string) *lists {
	return &lists{
		failures: &spill[report.Failure]{dir: dir, name: "failures"},
		skips:    &spill[report.Skip]{dir: dir, name: "skips"},
		notes:    &spill[report.Note]{dir: dir, name: "notes"},
	}
}

// addOutcome adds a batch's outcome: its counts to r, its entries (sorted by key within the
// batch) to the lists.
func (ls *lists) addOutcome(r *report.Report, key string, out report.Outcome) error {
	r.Retries += out.Retries
	r.SourceChanged += int64(out.SourceChanged)
	if out.Destination != "" {
		// A further destination's batch counts in its own section.
		i := destinationIndex(r, out.Destination)
		if i < 0 {
			return fmt.Errorf("outcome of batch %s: destination %q, which the cursor does not list", key, out.Destination)
		}
		r.Destinations[i].AddOutcome(out)
	} else {
		r.Batches++
		r.Copied += int64(out.Copied)
		r.Deleted += int64(out.Deleted)
		r.Failed += int64(out.Failed)
		r.Skipped += int64(out.Skipped)
		r.AlreadyPresent += int64(out.AlreadyPresent)
		r.BytesCopied += out.BytesCopied
	}
	sort.SliceStable(out.Failures, func(i, j int) bool { return out.Failures[i].Key < out.Failures[j].Key })
	sort.SliceStable(out.Skips, func(i, j int) bool { return out.Skips[i].Key < out.Skips[j].Key })
	sort.SliceStable(out.Notes, func(i, j int) bool { return out.Notes[i].Key < out.Notes[j].Key })
	for _, f := range out.Failures {
		f.Batch = key
		if err := ls.failures.add(f); err != nil {
			return err
		}
	}
	for _, s := range out.Skips {
		if err := ls.skips.add(s); err != nil {
			return err
		}
	}
	for _, n := range out.Notes {
		if err := ls.notes.add(n); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes the spill files.
func (ls *lists) remove() {
	ls.failures.remove()
	ls.skips.remove()
	ls.notes.remove()
}

// spill is one list on disk: gzip-compressed JSON Lines (one entry per line; failures of one
// error compress about tenfold), its count, and its first entries, as many as the execution
// output could carry (report.DefaultOutputListBytes of JSON).
type spill[T report.Entry[T]] struct {
	dir, name string
	f         *os.File // created with the first entry
	zw        *gzip.Writer
	enc       *json.Encoder
	n         int64
	head      []T
	headBytes int
}

func (s *spill[T]) add(v T) error {
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "report-"+s.name+"-*.jsonl.gz")
		if err != nil {
			return fmt.Errorf("spill %s: %w", s.name, err)
		}
		s.f = f
		s.zw, _ = gzip.NewWriterLevel(f, gzip.BestSpeed)
		s.enc = json.NewEncoder(s.zw)
		s.enc.SetEscapeHTML(false)
	}
	if s.headBytes < report.DefaultOutputListBytes {
		b, err := json.Marshal(v.Short())
		if err != nil {
			return fmt.Errorf("spill %s: %w", s.name, err)
		}
		s.headBytes += len(b) + 1
		s.head = append(s.head, v)
	}
	s.n++
	if err := s.enc.Encode(v); err != nil {
		return fmt.Errorf("spill %s: %w", s.name, err)
	}
	return nil
}

// stream writes the entries' JSON to w, comma-separated, one per line (report.Encode's lists).
func (s *spill[T]) stream(w io.Writer) error {
	if s.f == nil {
		return nil
	}
	if err := s.zw.Close(); err != nil {
		return fmt.Errorf("spill %s: %w", s.name, err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spill %s: %w", s.name, err)
	}
	zr, err := gzip.NewReader(bufio.NewReader(s.f))
	if err != nil {
		return fmt.Errorf("spill %s: %w", s.name, err)
	}
	defer zr.Close()
	br := bufio.NewReaderSize(zr, 64<<10)
	sep := "\n    "
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// An entry longer than the buffer (a very long error): read the rest of it.
			rest, err2 := br.ReadBytes('\n')
			line, err = append(append([]byte{}, line...), rest...), err2
		}
		if len(line) > 0 && line[len(line)-1] == '\n' {
			if _, werr := io.WriteString(w, sep); werr != nil {
				return werr
			}
			if _, werr := w.Write(line[:len(line)-1]); werr != nil {
				return werr
			}
			sep = ",\n    "
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("spill %s: %w", s.name, err)
		}
	}
}

func (s *spill[T]) remove() {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
		s.f = nil
	}
}
