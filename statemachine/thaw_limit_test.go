package statemachine_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bucketvault/bucketvault/shared/batch"
	"github.com/bucketvault/bucketvault/statemachine/local"
)

// A restore waiting for a thaw is never killed by the execution's 25,000-event history: a thaw
// that takes 900 hours, checked every 60 s, ends with ThawIncomplete and a report naming every
// object once the tier's bound has passed; a slow thaw within the bound (40 hours of a
// DEEP_ARCHIVE Bulk thaw, checked every 60 s) completes, the checks spaced so that it fits.
func TestRestoreThawWaitIsBounded(t *testing.T) {
	tests := []struct {
		name, class, tier string
		thawAfter         time.Duration // of waiting, the fake completes the thaws
		wantStatus        string
	}{
		{"900-hour thaw at 60 s", "GLACIER", "Standard", 900 * time.Hour, "FAILED"},
		{"40-hour DEEP_ARCHIVE Bulk thaw at 60 s", "DEEP_ARCHIVE", "Bulk", 40 * time.Hour, "SUCCEEDED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rf := newRestoreFlow(t)
			rf.f.Put("bak", "cold/a.txt", []byte("alpha"))
			rf.f.Put("bak", "cold/b.txt", []byte("beta"))
			rf.f.Archive("bak", tc.class)
			var waited time.Duration
			rf.onWait = func(n int) {
				waited += rf.waits[n-1]
				if waited >= tc.thawAfter {
					rf.f.ThawAll()
				}
			}
			const name = "restore-slow-thaw"
			x, err := rf.exec.Run(context.Background(), name, []byte(`{"at": "2030-01-01T00:00:00Z", "targetBucket": "target", "thawTier": "`+tc.tier+`", "thawCheckSeconds": 60}`))
			if err != nil {
				t.Fatal(err)
			}
			if x.Status != tc.wantStatus || x.Error == "States.Runtime" {
				t.Fatalf("restore %s %s: %s (after %d events, %s of waits)", x.Status, x.Error, x.Cause, len(x.Events), waited)
			}
			if n := len(x.Events); n > 12000 {
				t.Errorf("%d history events, want well under %d", n, local.MaxHistoryEvents)
			}
			t.Logf("%s %s: %d history events, %d waits, %s waited", x.Status, x.Error, len(x.Events), len(rf.waits), waited)
			if tc.wantStatus == "SUCCEEDED" {
				if got, ok := rf.target(t, "cold/a.txt"); !ok || got != "alpha" {
					t.Errorf("cold/a.txt = %q (present %v)", got, ok)
				}
				return
			}
			if x.Error != "ThawIncomplete" || !strings.Contains(x.Cause, "still thawing") {
				t.Errorf("execution error %s: %s; want ThawIncomplete", x.Error, x.Cause)
			}
			if entered(x, "Report") != 1 {
				t.Error("the Report state did not run")
			}
			out, err := rf.f.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("run"), Key: aws.String(batch.ReportKey(name))})
			if err != nil {
				t.Fatalf("no report: %v", err)
			}
			body, _ := io.ReadAll(out.Body)
			if !strings.Contains(string(body), "ThawIncomplete") || !strings.Contains(string(body), "cold/a.txt") || !strings.Contains(string(body), "cold/b.txt") {
				t.Errorf("report does not name ThawIncomplete and both objects:\n%s", body)
			}
			if _, ok := rf.target(t, "cold/a.txt"); ok {
				t.Error("cold/a.txt was copied although its thaw never completed")
			}
		})
	}
}
