package emf

import (
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/report"
)

func TestLine(t *testing.T) {
	at := time.Date(2026, 3, 1, 2, 4, 12, 5e6, time.UTC)
	meta := `{"_aws":{"Timestamp":1772330652005,"CloudWatchMetrics":[{"Namespace":"bucketvault","Dimensions":[["StateMachine","Kind"]],` +
		`"Metrics":[{"Name":"Copied","Unit":"Count"},{"Name":"Deleted","Unit":"Count"},{"Name":"Failed","Unit":"Count"},{"Name":"Bytes","Unit":"Bytes"},` +
		`{"Name":"DurationSeconds","Unit":"Seconds"},{"Name":"Listed","Unit":"Count"},{"Name":"Succeeded","Unit":"Count"}]}]},`
	cases := []struct {
		name string
		r    report.Report
		kind string
		want string
	}{
		{"a backup that succeeded", report.Report{Execution: "backup-1", Status: report.Succeeded, Copied: 1204, Deleted: 3, BytesCopied: 2 << 30, Listed: 50000},
			"backup", meta + `"StateMachine":"bucketvault-backup","Kind":"backup","Execution":"backup-1","Status":"SUCCEEDED","Copied":1204,"Deleted":3,"Failed":0,"Bytes":2147483648,"DurationSeconds":252.5,"Listed":50000,"Succeeded":1}`},
		{"a restore that failed", report.Report{Execution: "restore-1", Status: report.Failed, Error: "BackupIncomplete", Copied: 1, Failed: 2, Listed: 3},
			"restore", meta + `"StateMachine":"bucketvault-backup","Kind":"restore","Execution":"restore-1","Status":"FAILED","Copied":1,"Deleted":0,"Failed":2,"Bytes":0,"DurationSeconds":252.5,"Listed":3,"Succeeded":0}`},
		// Only a real run of the whole bucket counts for the silence alarm.
		{"a dry run that succeeded", report.Report{Execution: "backup-2", Status: report.Succeeded, DryRun: true, Listed: 5},
			"backup", meta + `"StateMachine":"bucketvault-backup","Kind":"backup","Execution":"backup-2","Status":"SUCCEEDED","Copied":0,"Deleted":0,"Failed":0,"Bytes":0,"DurationSeconds":252.5,"Listed":5,"Succeeded":0}`},
		{"a one-folder run that succeeded", report.Report{Execution: "backup-3", Status: report.Succeeded, Prefix: "docs/", Copied: 2, Listed: 2},
			"backup", meta + `"StateMachine":"bucketvault-backup","Kind":"backup","Execution":"backup-3","Status":"SUCCEEDED","Copied":2,"Deleted":0,"Failed":0,"Bytes":0,"DurationSeconds":252.5,"Listed":2,"Succeeded":0}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(Line(tc.r, "bucketvault-backup", tc.kind, 252.5, at)); got != tc.want {
				t.Errorf("line\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}
