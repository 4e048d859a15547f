//go:build integration

package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/report"
	"github.com/bucketvault/bucketvault/statemachine/local"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

// contentOf hashes every current object of a bucket, by key, read through client.
func (e *env) contentOf(client *s3.Client, bucket string) map[string]string {
	e.t.Helper()
	m := map[string]string{}
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, o := range page.Contents {
			out, err := client.GetObject(e.ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				e.t.Fatal(err)
			}
			m[aws.ToString(o.Key)] = shaReader(e.t, out.Body)
		}
	}
	return m
}

// section is the report's section of further destination name.
func section(t *testing.T, r *report.Report, name string) report.Destination {
	t.Helper()
	for _, d := range r.Destinations {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("report has no section for destination %q: %+v", name, r.Destinations)
	return report.Destination{}
}

func sameMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A second destination on the same server: every run writes both, each detects its own changes
// (one version per change), an idle run copies nothing to either, and an unversioned third
// destination fails the run naming it while the others complete.
func TestSecondDestinationSameProvider(t *testing.T) {
	dr, bad := "dr-"+strings.ToLower(randomHex(4)), "nover-"+strings.ToLower(randomHex(4))
	e := newEnv(t, envOptions{vars: map[string]string{
		"DESTINATIONS": fmt.Sprintf(`[{"name":"dr","bucket":%q}]`, dr),
	}})
	for _, b := range []string{dr, bad} {
		if _, err := e.s3.CreateBucket(e.ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	e.versioning(dr)
	e.putMany(e.source, 40, func(i int) string { return fmt.Sprintf("data/%03d", i) }, func(i int) []byte { return []byte(fmt.Sprintf("v1-%d", i)) })
	// dr already holds a few keys: one the same, one different, one the source does not have.
	e.putBytes(dr, "data/000", []byte("v1-0"))
	e.putBytes(dr, "data/001", []byte("stale"))
	e.putBytes(dr, "old/gone", []byte("x"))

	first := e.mustBackup(`{}`).Report
	d := section(t, first, "dr")
	if first.Copied != 40 || d.New != 38 || d.Changed != 1 || d.Unchanged != 1 || d.ToDelete != 1 || d.Copied != 39 || d.Deleted != 1 || d.Failed != 0 {
		t.Fatalf("first run: backup copied %d; dr %+v", first.Copied, d)
	}
	src := e.contentOf(e.s3, e.source)
	if got := e.contentOf(e.s3, dr); !sameMaps(got, src) {
		t.Fatalf("dr holds %d keys, not the source's %d (or content differs)", len(got), len(src))
	}

	e.putBytes(e.source, "data/002", []byte("v2"))
	e.del(e.source, "data/003")
	e.putBytes(e.source, "data/new", []byte("n"))
	second := e.mustBackup(`{}`).Report
	d = section(t, second, "dr")
	if second.New != 1 || second.Changed != 1 || second.ToDelete != 1 || d.New != 1 || d.Changed != 1 || d.ToDelete != 1 || d.Copied != 2 || d.Deleted != 1 {
		t.Fatalf("second run: backup %d/%d/%d; dr %+v", second.New, second.Changed, second.ToDelete, d)
	}
	vs := e.versions(dr)
	if vs["data/002"].data != 2 || vs["data/003"].data != 1 || !vs["data/003"].latestMarker || vs["data/004"].data != 1 {
		t.Fatalf("dr versions: data/002 %+v data/003 %+v data/004 %+v", *vs["data/002"], *vs["data/003"], *vs["data/004"])
	}
	if got := e.contentOf(e.s3, dr); !sameMaps(got, e.contentOf(e.s3, e.source)) {
		t.Fatal("dr differs from the source after the second run")
	}

	idle := e.mustBackup(`{}`).Report
	if d := section(t, idle, "dr"); idle.Copied != 0 || d.Copied != 0 || d.Deleted != 0 || d.Unchanged != 40 {
		t.Fatalf("idle run copied %d, dr %+v", idle.Copied, d)
	}

	// An unversioned destination is refused; the backup bucket and dr are written all the same.
	e.runner.Env["DESTINATIONS"] = fmt.Sprintf(`[{"name":"dr","bucket":%q},{"name":"nover","bucket":%q}]`, dr, bad)
	e.putBytes(e.source, "data/later", []byte("l"))
	res := e.backupRun(`{}`)
	if res.Succeeded() || res.Report == nil || res.Report.Error != "BackupIncomplete" || !strings.Contains(res.Report.Cause, `destination "nover"`) {
		t.Fatalf("with an unversioned destination: %s %s", res.Execution.Status, res.ReportJSON)
	}
	if d := section(t, res.Report, "dr"); res.Report.Copied != 1 || d.Copied != 1 || d.Problem() != "" {
		t.Fatalf("the others were not written: backup copied %d, dr %+v", res.Report.Copied, d)
	}
	if keys := e.keys(bad); len(keys) != 0 {
		t.Fatalf("the unversioned destination was written: %v", keys)
	}
	if n := section(t, res.Report, "nover"); !strings.Contains(n.Error, "versioning must be enabled") {
		t.Fatalf("nover section %+v", n)
	}
}

// shaReader hashes and closes a body.
func shaReader(t *testing.T, r io.ReadCloser) string {
	t.Helper()
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// A second destination on another provider (a second MinIO with its own credentials): a backup
// writes both, streamed, with metadata, tags and the multipart layout kept; the second provider
// stopped during a run fails only its own objects, named, and the run ends FAILED naming it;
// once it is back the next run converges, with one version per change; a point-in-time restore
// from it rebuilds the first run's state exactly.
func TestSecondDestinationOtherProvider(t *testing.T) {
	far := startSecondMinIO(t)
	offsite := far.bucket(t, "offsite", true)
	e := newEnv(t, envOptions{vars: map[string]string{
		"DESTINATIONS":              fmt.Sprintf(`[{"name":"offsite","bucket":%q,"endpoint":%q,"credentials":"env:OFFSITE"}]`, offsite, far.Endpoint),
		"OFFSITE_ACCESS_KEY_ID":     far.AccessKey,
		"OFFSITE_SECRET_ACCESS_KEY": far.SecretKey,
	}})
	e.putMany(e.source, 30, func(i int) string { return fmt.Sprintf("f/%02d", i) }, func(i int) []byte { return []byte(fmt.Sprintf("first-%d", i)) })
	expires := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	big := payloadOf(11<<20 + 123)
	putWithHeaders(t, e.s3, e.source, "big/multi.bin", big, 5<<20, expires)

	run1 := e.mustBackup(`{}`)
	d := section(t, run1.Report, "offsite")
	if run1.Report.Copied != 31 || d.Copied != 31 || d.Failed != 0 || d.BytesCopied != run1.Report.BytesCopied {
		t.Fatalf("first run: backup copied %d (%d bytes); offsite %+v", run1.Report.Copied, run1.Report.BytesCopied, d)
	}
	first := e.contentOf(e.s3, e.source)
	if got := e.contentOf(far.S3, offsite); !sameMaps(got, first) {
		t.Fatalf("offsite holds %d keys, not the source's %d (or content differs)", len(got), len(first))
	}
	srcHead, err := e.s3.HeadObject(e.ctx, &s3.HeadObjectInput{Bucket: aws.String(e.source), Key: aws.String("big/multi.bin")})
	if err != nil {
		t.Fatal(err)
	}
	checkCopy(t, far.S3, offsite, "big/multi.bin", big, change.Object{Key: "big/multi.bin", Size: int64(len(big)), ETag: aws.ToString(srcHead.ETag)}, true, expires)
	time.Sleep(20 * time.Millisecond) // the next writes are strictly after run 1 finished

	// The second provider goes away once the listing is done: its copies fail, named; the backup
	// bucket's complete.
	e.putBytes(e.source, "f/00", []byte("second"))
	e.putBytes(e.source, "f/new", []byte("new"))
	e.del(e.source, "f/01")
	e.runner.Wrap = func(name string, fn local.Function) local.Function {
		if name != localrun.CopierName {
			return fn
		}
		return funcHandler(func(ctx context.Context, payload []byte) ([]byte, error) {
			far.Kill()
			return fn.Invoke(ctx, payload)
		})
	}
	res := e.backupRun(`{}`)
	e.runner.Wrap = nil
	if res.Succeeded() || res.Report == nil || res.Report.Error != "BackupIncomplete" || !strings.Contains(res.Report.Cause, `destination "offsite"`) {
		t.Fatalf("with the second provider down: %s %s", res.Execution.Status, res.ReportJSON)
	}
	if r := res.Report; r.Copied != 2 || r.Deleted != 1 || r.Failed != 0 {
		t.Fatalf("the backup bucket was not completed: %+v", r)
	}
	d = section(t, res.Report, "offsite")
	if d.Failed != 3 || d.Copied+d.Deleted != 0 {
		t.Fatalf("offsite section %+v: want its 3 objects failed", d)
	}
	named := map[string]bool{}
	for _, f := range res.Report.Failures {
		if f.Destination != "offsite" || f.Error == "" {
			t.Errorf("failure %+v does not name offsite and its error", f)
		}
		named[f.Key] = true
	}
	if !named["f/00"] || !named["f/new"] || !named["f/01"] || len(named) != 3 {
		t.Fatalf("failures name %v, want f/00, f/new and f/01", named)
	}

	// Back: the next run converges.
	if err := far.Restart(e.ctx); err != nil {
		t.Fatal(err)
	}
	run3 := e.mustBackup(`{}`)
	if d := section(t, run3.Report, "offsite"); run3.Report.Copied != 0 || d.Copied != 2 || d.Deleted != 1 || d.Unchanged != 29 {
		t.Fatalf("converging run: backup copied %d, offsite %+v", run3.Report.Copied, d)
	}
	if got := e.contentOf(far.S3, offsite); !sameMaps(got, e.contentOf(e.s3, e.source)) {
		t.Fatal("offsite differs from the source after the converging run")
	}
	fv := map[string]*versionInfo{}
	p := s3.NewListObjectVersionsPaginator(far.S3, &s3.ListObjectVersionsInput{Bucket: aws.String(offsite)})
	for p.HasMorePages() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Versions {
			if fv[aws.ToString(v.Key)] == nil {
				fv[aws.ToString(v.Key)] = &versionInfo{}
			}
			fv[aws.ToString(v.Key)].data++
		}
		for _, m := range page.DeleteMarkers {
			fv[aws.ToString(m.Key)].markers++
		}
	}
	if fv["f/00"].data != 2 || fv["f/01"].data != 1 || fv["f/01"].markers != 1 || fv["f/02"].data != 1 || fv["big/multi.bin"].data != 1 || fv["f/new"].data != 1 {
		t.Fatalf("offsite versions: f/00 %+v f/01 %+v f/02 %+v big %+v", *fv["f/00"], *fv["f/01"], *fv["f/02"], *fv["big/multi.bin"])
	}

	// A point-in-time restore from the second provider, as of the first run, into a new bucket.
	target := e.newBucket("from-offsite")
	r := e.mustRestore(fmt.Sprintf(`{"at": %q, "targetBucket": %q, "from": "offsite"}`, run1.Execution.Name, target))
	if r.Report.Copied != 31 {
		t.Fatalf("restore from offsite copied %d, want 31: %s", r.Report.Copied, r.ReportJSON)
	}
	if got := e.contentOf(e.s3, target); !sameMaps(got, first) {
		t.Fatal("the restore from offsite is not the first run's state")
	}
	checkCopy(t, e.s3, target, "big/multi.bin", big, change.Object{Key: "big/multi.bin", Size: int64(len(big)), ETag: aws.ToString(srcHead.ETag)}, true, expires)
}

func payloadOf(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i/7)
	}
	return b
}
