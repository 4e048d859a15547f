package reporter

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// generated is an S3 that makes up a run of n batches of size objects each, every object
// failed: the even batches have an outcome naming each failure, the odd ones none (the batch
// failed as a whole). Nothing is stored, so the heap measured is the reporter's own; report.json
// goes to a file.
type generated struct {
	exec          string
	batches, size int
	reportPath    string
}

func (g *generated) key(b, i int) string {
	return fmt.Sprintf("data/%06d/%06d/an-object-with-a-longer-name.parquet", b, i)
}

func (g *generated) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	key := aws.ToString(in.Key)
	var buf bytes.Buffer
	switch {
	case key == batch.ManifestKey(g.exec):
		keys := make([]string, g.batches)
		for b := range keys {
			keys[b] = batch.Key(g.exec, b)
		}
		for _, k := range keys {
			fmt.Fprintf(&buf, "{\"Key\":%q}\n", k)
		}
	case strings.Contains(key, "/outcomes/"):
		var b int
		fmt.Sscanf(key[strings.LastIndex(key, "/")+1:], "%d.json", &b)
		if b%2 == 1 {
			return nil, s3fake.APIError("NoSuchKey")
		}
		o := report.Outcome{Items: g.size, Failed: g.size, Failures: make([]report.Failure, 0, g.size), Skips: []report.Skip{}}
		for i := range g.size {
			o.Failures = append(o.Failures, report.Failure{Key: g.key(b, i), Op: "copy",
				Error: "operation error S3: CopyObject, https response error StatusCode: 403, api error AccessDenied: Access Denied"})
		}
		json.NewEncoder(&buf).Encode(o)
	case strings.Contains(key, "/batches/"):
		var b int
		fmt.Sscanf(key[strings.LastIndex(key, "/")+1:], "%d.jsonl", &b)
		items := make([]batch.Item, g.size)
		for i := range items {
			items[i] = batch.Item{Op: batch.OpCopy, Key: g.key(b, i), Change: "new", Size: 1}
		}
		body, _ := batch.Encode(batch.Header{Version: batch.Version, Source: "src", Destination: "bak"}, items)
		buf.Write(body)
	default:
		return nil, s3fake.APIError("NoSuchKey")
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(&buf)}, nil
}

func (g *generated) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	f, err := os.Create(g.reportPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	_, err = io.Copy(f, in.Body)
	return &s3.PutObjectOutput{}, err
}

func (g *generated) ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	return &s3.ListObjectsV2Output{}, nil
}

// peakHeap runs fn with the collector kept close to the live heap (GOGC 5) and samples the heap's
// object bytes; it returns the highest sample above the heap before fn.
func peakHeap(fn func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
	}()
	fn()
	close(stop)
	wg.Wait()
	if p := peak.Load(); p > base {
		return p - base
	}
	return 0
}

// The reporter's memory does not grow with the failures it reports: a run that failed 100,000
// objects (half named by their batches' outcomes, half by batches that failed whole) writes all
// of them to report.json while the reporter's heap stays under maxPeak, as it does at 10,000.
// Before the failures were spilled to disk, 100,000 failures took well over 40 MiB.
func TestReportScaleBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const maxPeak = 12 << 20
	for _, tt := range []struct{ batches, size int }{{10, 1000}, {100, 1000}} {
		n := tt.batches * tt.size
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			g := &generated{exec: "exec", batches: tt.batches, size: tt.size, reportPath: filepath.Join(dir, "report.json")}
			h := &Handler{S3: g, Config: Config{SourceBucket: "src", BackupBucket: "bak", RunBucket: "run"}, Logger: slog.New(slog.DiscardHandler), TempDir: dir}
			st := mustJSON(state{Done: true, Copy: &MapResult{}, Cursor: cursor(report.Totals{Listed: int64(n), New: int64(n)})})
			var out report.Report
			var err error
			peak := peakHeap(func() {
				out, err = h.Handle(context.Background(), Request{Execution: "exec", State: st})
			})
			if err != nil {
				t.Fatal(err)
			}
			info, _ := os.Stat(g.reportPath)
			t.Logf("%d failures: reporter peak heap %.1f MiB above its start, report.json %.1f MiB", n, float64(peak)/(1<<20), float64(info.Size())/(1<<20))
			if out.Failed != int64(n) || out.FailedBatches != int64(tt.batches/2) || int64(len(out.Failures))+out.FailuresOmitted != int64(n) {
				t.Fatalf("output: failed %d, failed batches %d, %d failures + %d omitted", out.Failed, out.FailedBatches, len(out.Failures), out.FailuresOmitted)
			}
			if peak > maxPeak {
				t.Errorf("peak heap %d bytes, want at most %d", peak, maxPeak)
			}
			// report.json holds every failure, in batch order, each once.
			f, err := os.Open(g.reportPath)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var stored report.Report
			if err := json.NewDecoder(f).Decode(&stored); err != nil {
				t.Fatal(err)
			}
			if len(stored.Failures) != n || stored.Failed != int64(n) || stored.FailuresOmitted != 0 {
				t.Fatalf("report.json: %d failures, failed %d, omitted %d", len(stored.Failures), stored.Failed, stored.FailuresOmitted)
			}
			for i, fl := range stored.Failures {
				if want := g.key(i/tt.size, i%tt.size); fl.Key != want {
					t.Fatalf("report.json failure %d is %q, want %q", i, fl.Key, want)
				}
			}
		})
	}
}
