// Command demo shows bucketvault with zero setup: it starts its own MinIO, backs up the recipe's
// sample files with the bucketvault command, changes one file, deletes another and adds a third,
// backs up again (all three changes in one run), lists the runs, the backup as it was after the
// first run and now, a file's history, restores the first state into a new bucket, shows it next
// to the primary bucket, and stops MinIO.
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
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
	"github.com/bucketvault/bucketvault/statemachine/cli"
)

const (
	primary  = "bucketvault-demo-primary"
	backup   = "bucketvault-demo-backup"
	runs     = "bucketvault-demo-runs"
	restored = "bucketvault-demo-restored"
	drill    = "bucketvault-demo-drill" // where a restore drill restores its sample, then removes it
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
	fmt.Println("   function logs (JSON):", logFile.Name())
	// The bucketvault command, in-process, configured as a person would with three variables.
	env := map[string]string{"SOURCE_BUCKET": primary, "BACKUP_BUCKET": backup, "RUN_BUCKET": runs, "BUCKETVAULT_CONFIG": os.DevNull,
		"DRILL_BUCKET": drill, "RESTORE_TARGETS": drill}
	bucketvault := func(args ...string) (string, error) {
		fmt.Printf("\n$ bucketvault %s\n", strings.Join(args, " "))
		var out bytes.Buffer
		cmd := cli.New("demo", func(k string) string {
			if v, ok := env[k]; ok {
				return v
			}
			return os.Getenv(k)
		})
		cmd.SetArgs(append(args, "--log-format", "json"))
		cmd.SetOut(io.MultiWriter(os.Stdout, &out))
		cmd.SetErr(logFile)
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}
	runName := func(out string) string {
		// The summary's first line: "backup <name>: SUCCEEDED in …".
		f := strings.Fields(out)
		if len(f) < 2 {
			return ""
		}
		return strings.TrimSuffix(f[1], ":")
	}

	fmt.Println("\n== First backup: every object is new")
	out, err := bucketvault("backup")
	if err != nil {
		return err
	}
	first := runName(out)
	fmt.Println("\n== Changing sample-file-1.txt, deleting sample-file-2.txt and adding sample-file-4.txt in the primary bucket")
	if err := put(ctx, client, "sample-file-1.txt", "This is an updated version of file 1 - "+time.Now().UTC().Format(time.RFC3339)+"\n", nil); err != nil {
		return err
	}
	if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(primary), Key: aws.String("sample-file-2.txt")}); err != nil {
		return err
	}
	if err := put(ctx, client, "sample-file-4.txt", "This is sample file 4 - "+time.Now().UTC().Format(time.RFC3339)+"\n", nil); err != nil {
		return err
	}
	fmt.Println("\n== Second backup: one changed, one deleted, one added, the rest untouched")
	if out, err = bucketvault("backup"); err != nil {
		return err
	}
	second := runName(out)
	fmt.Println("\n== What the backup holds: the runs, the bucket as it was after the first run and now, a file's history, what changed")
	for _, args := range [][]string{{"runs"}, {"ls", "--at", first}, {"ls"}, {"versions", "sample-file-1.txt"}, {"diff", first, second}} {
		if _, err := bucketvault(args...); err != nil {
			return err
		}
	}
	fmt.Printf("\n== Restore the whole bucket as it was after the first run into a new bucket, %s\n", restored)
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(restored)}); err != nil {
		return err
	}
	if _, err := bucketvault("restore", "--at", first, "--to", restored); err != nil {
		return err
	}
	if err := show(ctx, client); err != nil {
		return err
	}
	fmt.Println("\n== A restore drill: every object of the backup checked against the primary bucket (SHA-256 of both),")
	fmt.Printf("   and a sample restored through the restore state machine into %s, compared and removed\n", drill)
	_, err = bucketvault("verify", "--sample", "all")
	return err
}

// show prints what the restored bucket holds next to the primary bucket now.
func show(ctx context.Context, client *s3.Client) error {
	fmt.Printf("\n== %s now, and %s as restored\n", primary, restored)
	tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "   KEY\tPRIMARY NOW\tRESTORED")
	keys := map[string]bool{}
	for _, b := range []string{primary, restored} {
		out, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b)})
		if err != nil {
			return err
		}
		for _, o := range out.Contents {
			keys[aws.ToString(o.Key)] = true
		}
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		now, _ := read(ctx, client, primary, k)
		was, _ := read(ctx, client, restored, k)
		fmt.Fprintf(tw, "   %s\t%s\t%s\n", k, orDash(now), orDash(was))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s = strings.TrimSpace(s); s == "" {
		return "-"
	}
	return s
}

func setup(ctx context.Context, client *s3.Client) error {
	for _, b := range []string{primary, backup, runs, drill} {
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

func read(ctx context.Context, client *s3.Client, bucket, key string) (string, error) {
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", err
	}
	defer out.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(out.Body)
	return b.String(), err
}
