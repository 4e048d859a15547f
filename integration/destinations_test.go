//go:build integration

package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/report"
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
