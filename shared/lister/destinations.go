package lister

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/bucketcheck"
	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/destination"
	"github.com/bucketvault/bucketvault/shared/guard"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

// Further destinations (package destination). The one source listing is merged with the backup
// bucket's and with each further destination's own listing, in key order; each destination's
// keys are classified against it alone (change.Classify: only bucketvault writes it), so an
// object is copied to each destination that lacks it. Their batches are their own
// (batch.DestinationKey), with the destination's name in the header. A destination that cannot
// be checked or listed is marked failed in the totals (DestinationTotals.Error) and left alone
// from then on, while the others go on; the reporter fails the run naming it. Its guards judge
// its own counts, and a tripped deletion guard withholds only its deletions.

// header is the batch header of the backup bucket's batches.
func (h *Handler) header() batch.Header {
	return batch.Header{Version: batch.Version, Source: h.Config.SourceBucket, Destination: h.Config.BackupBucket}
}

// destinationClients returns the further destinations' clients, opening them on first use.
func (h *Handler) destinationClients(ctx context.Context) (map[string]S3, error) {
	h.destMu.Lock()
	defer h.destMu.Unlock()
	if h.Destinations != nil || len(h.Config.Destinations) == 0 {
		return h.Destinations, nil
	}
	m, err := destination.OpenAs(ctx, h.Config.Destinations, h.S3, s3client.Options{})
	if err != nil {
		return nil, err
	}
	h.Destinations = m
	return m, nil
}

// checkDestinations starts each further destination's totals and checks it as the backup bucket
// is checked (it exists, lists in key order, is versioned). A destination that fails is marked
// failed, and the run goes on with the others.
func (h *Handler) checkDestinations(ctx context.Context, cur *Cursor) error {
	if len(h.Config.Destinations) == 0 {
		return nil
	}
	clients, err := h.destinationClients(ctx)
	if err != nil {
		return err
	}
	cur.Totals.Destinations = make([]report.DestinationTotals, len(h.Config.Destinations))
	cur.Position.Destinations = make([]DestinationPosition, len(h.Config.Destinations))
	for i, d := range h.Config.Destinations {
		t := &cur.Totals.Destinations[i]
		t.Name, t.Bucket = d.Name, d.Bucket
		if err := checkDestination(ctx, clients[d.Name], d); err != nil {
			t.Error = err.Error()
			h.Logger.WarnContext(ctx, "destination failed its check; the run goes on without it", "destination", d.Name, "bucket", d.Bucket, "error", err)
		}
	}
	return nil
}

func checkDestination(ctx context.Context, client S3, d destination.Destination) error {
	if err := bucketcheck.Supported("destination "+d.Name, d.Bucket); err != nil {
		return err
	}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(d.Bucket)}); err != nil {
		return fmt.Errorf("check the bucket: %w", err)
	}
	v, err := client.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String(d.Bucket)})
	if err != nil {
		return fmt.Errorf("read its versioning: %w", err)
	}
	if v.Status != types.BucketVersioningStatusEnabled {
		return fmt.Errorf("versioning must be enabled (it is %q), or copies would overwrite its history; nothing was written to it", string(v.Status))
	}
	return nil
}

// furtherDest is one further destination being listed by this invocation.
type furtherDest struct {
	name      string
	totals    *report.DestinationTotals
	stream    *softStream
	copies    pending
	deletions pending
}

// failed reports whether the destination failed (before or during this invocation).
func (f *furtherDest) failed() bool { return f.totals.Error != "" }

// furtherStreams opens the listing of every further destination that has not failed.
func (h *Handler) furtherStreams(ctx context.Context, cur *Cursor, prefixes []string, after string, rng *Range, retries *s3client.RetryCounter) ([]*furtherDest, error) {
	if len(h.Config.Destinations) == 0 {
		return nil, nil
	}
	if len(cur.Totals.Destinations) != len(h.Config.Destinations) || len(cur.Position.Destinations) != len(h.Config.Destinations) {
		return nil, fmt.Errorf("the cursor has %d destinations, the configuration %d (DESTINATIONS changed during the run?)", len(cur.Totals.Destinations), len(h.Config.Destinations))
	}
	clients, err := h.destinationClients(ctx)
	if err != nil {
		return nil, err
	}
	var out []*furtherDest
	for i, d := range h.Config.Destinations {
		t := &cur.Totals.Destinations[i]
		if t.Error != "" {
			continue
		}
		header := batch.Header{Version: batch.Version, Source: h.Config.SourceBucket, Destination: d.Bucket, DestinationName: d.Name}
		name := d.Name
		var s stream = newPrefixStream(clients[d.Name], d.Bucket, prefixes, after, retries.Option())
		copyKey := func(execution string, seq int) string { return batch.DestinationKey(execution, name, seq) }
		deleteKey := func(execution string, seq int) string { return batch.DestinationDeleteKey(execution, name, seq) }
		if rng != nil {
			s = bounded(s, rng.Until)
			copyKey = func(execution string, seq int) string {
				return batch.RangeDestinationKey(execution, name, rng.Index, seq)
			}
			deleteKey = func(execution string, seq int) string {
				return batch.RangeDestinationDeleteKey(execution, name, rng.Index, seq)
			}
		}
		out = append(out, &furtherDest{
			name: name, totals: t,
			stream:    &softStream{s: s, err: &t.Error},
			copies:    pending{header: header, count: &cur.Position.Destinations[i].CopyBatches, key: copyKey},
			deletions: pending{header: header, count: &cur.Position.Destinations[i].DeleteBatches, key: deleteKey},
		})
	}
	return out, nil
}

// softStream is a further destination's listing: an error ends it and is recorded as the
// destination's failure, instead of failing the run.
type softStream struct {
	s   stream
	err *string
}

func (f *softStream) Peek(ctx context.Context) (*change.Object, error) {
	if *f.err != "" {
		return nil, nil
	}
	o, err := f.s.Peek(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		*f.err = fmt.Sprintf("listing it failed: %v", err)
		return nil, nil
	}
	return o, nil
}

func (f *softStream) Pop() {
	if *f.err == "" {
		f.s.Pop()
	}
}

// furtherDecided is one further destination's entry and class for a merged key.
type furtherDecided struct {
	dst   *change.Object
	class change.Class
	skip  bool // the destination failed (nothing is decided for it from this key on), or neither it nor the source has the key
}

// firstKey is the key of a merged row's first entry.
func firstKey(row []*change.Object) string {
	for _, o := range row {
		if o != nil {
			return o.Key
		}
	}
	return ""
}

// decideFurther classifies a merged key for each further destination (the streams after the
// source and the backup in the row).
func (w *writer) decideFurther(row []*change.Object) []furtherDecided {
	if len(w.further) == 0 {
		return nil
	}
	src := row[sourceStream]
	out := make([]furtherDecided, len(w.further))
	for j, f := range w.further {
		if f.failed() {
			out[j].skip = true
			continue
		}
		dst := row[backupStream+1+j]
		if src == nil && dst == nil {
			out[j].skip = true // neither has the key: nothing to count or do
			continue
		}
		out[j] = furtherDecided{dst: dst, class: change.Classify(src, dst)}
	}
	return out
}

// furtherCopies reports whether a further destination would copy the key.
func (k decided) furtherCopies() bool {
	for _, f := range k.further {
		if !f.skip && (f.class == change.New || f.class == change.Changed) {
			return true
		}
	}
	return false
}

// addFurther counts a decided key for each further destination and puts its work items in
// that destination's batches, by the same rules as the backup bucket's (add).
func (w *writer) addFurther(k decided) error {
	for j, f := range w.further {
		fd := k.further[j]
		if fd.skip {
			continue // decided after the destination failed: nothing to do for it
		}
		t, src, dst := f.totals, k.src, fd.dst
		if dst != nil {
			t.BackupObjects++
		}
		if k.d.Excluded() {
			if dst != nil && w.filter.DeleteExcluded() {
				t.ToDelete++
				it := batch.Item{Op: batch.OpDelete, Key: k.key, Change: string(change.Deleted), Size: dst.Size, ETag: dst.ETag, LastModified: dst.LastModified}
				if src != nil {
					it.Change = ChangeExcluded
				}
				if err := w.put(&f.deletions, it, 0); err != nil {
					return err
				}
			}
			continue
		}
		var err error
		switch fd.class {
		case change.New, change.Changed:
			if fd.class == change.New {
				t.New++
			} else {
				t.Changed++
			}
			it := batch.Item{Op: batch.OpCopy, Key: k.key, Change: string(fd.class), Size: src.Size, ETag: src.ETag, LastModified: src.LastModified}
			if dst != nil {
				it.Prior = dst.ETag
			}
			size := src.Size
			if archived(src.StorageClass) {
				t.Archived++
				if w.h.Config.ArchivedSources == ArchivedSkip {
					it.Op, size = batch.OpKeep, 0
					it.Reason = fmt.Sprintf("archived (%s): not copied to destination %q; it must be restored (thawed) before it can be copied", src.StorageClass, f.name)
				}
			}
			t.BytesToCopy += size
			err = w.put(&f.copies, it, size)
		case change.Deleted:
			t.ToDelete++
			err = w.put(&f.deletions, batch.Item{Op: batch.OpDelete, Key: k.key, Change: string(fd.class), Size: dst.Size, ETag: dst.ETag, LastModified: dst.LastModified}, 0)
		default:
			t.Unchanged++
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// furtherGuards judges each further destination's own counts (dests: the run's totals of them)
// with the run's limits, appends the verdicts to guards, and returns the destinations whose
// deletions are withheld.
func (h *Handler) furtherGuards(ctx context.Context, execution string, dests []report.DestinationTotals, l guard.Limits, guards *[]report.Guard) map[string]bool {
	withheld := map[string]bool{}
	for _, t := range dests {
		if t.Error != "" {
			// Its counts stop where its listing failed (or were never made): no guard can judge
			// its deletions, so none run; the run fails naming it, and the next run decides.
			withheld[t.Name] = true
			continue
		}
		deletion, change := guard.Check(report.Totals{ToDelete: t.ToDelete, Changed: t.Changed, BackupObjects: t.BackupObjects}, l)
		for _, g := range []*report.Guard{&deletion, &change} {
			g.Destination = t.Name
			if g.Tripped {
				g.Message = fmt.Sprintf("destination %q (%s): %s", t.Name, t.Bucket, g.Message)
				h.Logger.WarnContext(ctx, "guard tripped", "execution", execution, "destination", t.Name, "guard", g.Name, "error", g.Error)
			}
		}
		if deletion.Tripped {
			withheld[t.Name] = true
		}
		*guards = append(*guards, deletion, change)
	}
	return withheld
}
