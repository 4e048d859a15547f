// Command demo shows bucketvault with zero setup: it starts its own MinIO, backs up the recipe's
// sample files, changes one file, deletes another and adds a third, backs up again (all three
// changes in one run), runs once more with nothing changed, prints the backup's version listing,
// restores the changed and the deleted file as they were at the first backup, and stops MinIO.
package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/integration/minio"
	"github.com/bucketvault/bucketvault/shared/s3client"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

const (
	primary = "bucketvault-demo-primary"
	backup  = "bucketvault-demo-backup"
	runs    = "bucketvault-demo-runs"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	fmt.Println("== Starting MinIO on loopback with random credentials")
	srv, err := minio.Start(ctx)
	if err != nil {
		return err
	}
	defer func() {
		srv.Stop()
		fmt.Println("== MinIO stopped and its data removed")
	}()
	for k, v := range srv.Env() {
		os.Setenv(k, v)
	}
	fmt.Println("   endpoint", srv.Endpoint)

	client, err := s3client.New(ctx, s3client.Options{})
	if err != nil {
		return err
	}
	if err := setup(ctx, client); err != nil {
		return err
	}
	logFile, err := os.CreateTemp("", "bucketvault-demo-*.log")
	if err != nil {
		return err
	}
	defer logFile.Close()
	runner := &localrun.Runner{
		S3:     client,
		Env:    map[string]string{"SOURCE_BUCKET": primary, "BACKUP_BUCKET": backup, "RUN_BUCKET": runs, "RESTORE_TARGETS": primary},
		Logger: slog.New(slog.NewJSONHandler(logFile, nil)),
	}
	fmt.Println("   function logs (JSON):", logFile.Name())

	first, err := backupOnce(ctx, runner, "first backup: every object is new")
	if err != nil {
		return err
	}
	fmt.Println("== Changing sample-file-1.txt, deleting sample-file-2.txt and adding sample-file-4.txt in the primary bucket")
	if err := put(ctx, client, "sample-file-1.txt", "This is an updated version of file 1 - "+time.Now().UTC().Format(time.RFC3339)+"\n", nil); err != nil {
		return err
	}
	if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(primary), Key: aws.String("sample-file-2.txt")}); err != nil {
		return err
	}
	if err := put(ctx, client, "sample-file-4.txt", "This is sample file 4 - "+time.Now().UTC().Format(time.RFC3339)+"\n", nil); err != nil {
		return err
	}
	if _, err := backupOnce(ctx, runner, "second backup: one changed, one deleted, one added, the rest untouched"); err != nil {
		return err
	}
	if _, err := backupOnce(ctx, runner, "third backup: nothing changed, nothing copied"); err != nil {
		return err
	}
	if err := versions(ctx, client); err != nil {
		return err
	}
	return restore(ctx, client, runner, first)
}

// restore brings back the changed and the deleted file as they were at the first backup, under
// restored/ in the primary bucket, and shows them next to what the primary holds now.
func restore(ctx context.Context, client *s3.Client, runner *localrun.Runner, at string) error {
	name := localrun.NewRestoreName(time.Now())
	fmt.Printf("\n== Restore %s: sample-file-1.txt and sample-file-2.txt as they were at backup %s, into restored/ in %s\n", name, at, primary)
	input := fmt.Sprintf(`{"at": %q, "keys": ["sample-file-1.txt", "sample-file-2.txt"], "targetPrefix": "restored/"}`, at)
	fmt.Println("   input", input)
	res, err := runner.Restore(ctx, name, []byte(input))
	if err != nil {
		return err
	}
	if res.Report == nil || !res.Succeeded() {
		return fmt.Errorf("restore %s %s: %s %s", name, res.Execution.Status, res.Execution.Error, res.Execution.Cause)
	}
	fmt.Printf("   execution %s: copied %d, failed %d; report s3://%s/%s\n", res.Execution.Status, res.Report.Copied, res.Report.Failed, runs, res.Report.ReportKey)
	for _, key := range []string{"sample-file-1.txt", "sample-file-2.txt"} {
		now, err := read(ctx, client, key)
		if err != nil {
			now = "(deleted)"
		}
		restored, err := read(ctx, client, "restored/"+key)
		if err != nil {
			return err
		}
		fmt.Printf("   %-18s now: %-60s restored: %s\n", key, strings.TrimSpace(now), strings.TrimSpace(restored))
	}
	return nil
}

func read(ctx context.Context, client *s3.Client, key string) (string, error) {
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(primary), Key: aws.String(key)})
	if err != nil {
		return "", err
	}
	defer out.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(out.Body)
	return b.String(), err
}

func setup(ctx context.Context, client *s3.Client) error {
	for _, b := range []string{primary, backup, runs} {
		if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			return fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  aws.String(backup),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
	}); err != nil {
		return err
	}
	fmt.Printf("== Created %s, %s (versioned) and %s; uploading the recipe's sample files\n", primary, backup, runs)
	now := time.Now().UTC().Format(time.RFC3339)
	files := []struct {
		key, body string
		meta      map[string]string
	}{
		{"sample-file-1.txt", "This is sample file 1 - " + now + "\n", nil},
		{"sample-file-2.txt", "This is sample file 2 - " + now + "\n", nil},
		{"sample-file-3.txt", "This is sample file 3 - " + now + "\n", nil},
		{"data/logs/app.log", "Application log entry - " + now + "\n", map[string]string{"source": "app"}},
		{"data/config.json", "System configuration data\n", nil},
	}
	for _, f := range files {
		if err := put(ctx, client, f.key, f.body, f.meta); err != nil {
			return err
		}
	}
	return nil
}

func put(ctx context.Context, client *s3.Client, key, body string, meta map[string]string) error {
	ct := "text/plain"
	if strings.HasSuffix(key, ".json") {
		ct = "application/json"
	}
	_, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(primary), Key: aws.String(key), Body: bytes.NewReader([]byte(body)),
		ContentType: aws.String(ct), Metadata: meta,
	})
	return err
}

// backupOnce runs one backup and returns its execution name.
func backupOnce(ctx context.Context, runner *localrun.Runner, what string) (string, error) {
	name := localrun.NewExecutionName(time.Now())
	fmt.Printf("\n== Backup %s (%s)\n", name, what)
	res, err := runner.Backup(ctx, name, []byte(`{}`))
	if err != nil {
		return "", err
	}
	if res.Report == nil {
		return "", fmt.Errorf("execution %s %s without a report: %s %s", name, res.Execution.Status, res.Execution.Error, res.Execution.Cause)
	}
	r := res.Report
	fmt.Printf("   execution %s: listed %d, new %d, changed %d, unchanged %d, copied %d (%d bytes), deleted %d, failed %d, deletions withheld %d\n",
		res.Execution.Status, r.Listed, r.New, r.Changed, r.Unchanged, r.Copied, r.BytesCopied, r.Deleted, r.Failed, r.Withheld)
	fmt.Printf("   report s3://%s/%s\n", runs, r.ReportKey)
	if !res.Succeeded() {
		return "", fmt.Errorf("execution %s %s: %s", name, res.Execution.Status, res.Execution.Error)
	}
	return name, nil
}

func versions(ctx context.Context, client *s3.Client) error {
	fmt.Printf("\n== Versions in the backup bucket %s (newest first per key)\n", backup)
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "   KEY\tLAST MODIFIED\tLATEST\tSIZE\tKIND\tVERSION")
	type row struct {
		key, version, kind, size string
		latest                   bool
		at                       time.Time
	}
	var rows []row
	p := s3.NewListObjectVersionsPaginator(client, &s3.ListObjectVersionsInput{Bucket: aws.String(backup)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, v := range page.Versions {
			rows = append(rows, row{aws.ToString(v.Key), aws.ToString(v.VersionId), "data", fmt.Sprint(aws.ToInt64(v.Size)), aws.ToBool(v.IsLatest), aws.ToTime(v.LastModified)})
		}
		for _, m := range page.DeleteMarkers {
			rows = append(rows, row{aws.ToString(m.Key), aws.ToString(m.VersionId), "delete marker", "-", aws.ToBool(m.IsLatest), aws.ToTime(m.LastModified)})
		}
	}
	sort.SliceStable(rows, func(i, j int) bool {
		if rows[i].key != rows[j].key {
			return rows[i].key < rows[j].key
		}
		return rows[i].at.After(rows[j].at)
	})
	for _, r := range rows {
		fmt.Fprintf(tw, "   %s\t%s\t%v\t%s\t%s\t%s\n", r.key, r.at.UTC().Format("15:04:05.000"), r.latest, r.size, r.kind, r.version)
	}
	return tw.Flush()
}
