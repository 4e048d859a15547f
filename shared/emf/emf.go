// Package emf writes a run's figures as one CloudWatch Embedded Metric Format log line: CloudWatch
// Logs turns it into metrics (namespace DefaultNamespace, dimensions StateMachine and Kind) with
// no API call (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
package emf

import (
	"encoding/json"
	"time"

	"github.com/bucketvault/bucketvault/shared/report"
)

// DefaultNamespace is the metrics' CloudWatch namespace.
const DefaultNamespace = "bucketvault"

// Metric names, each a member of the line's root.
const (
	Copied          = "Copied"
	Deleted         = "Deleted"
	Failed          = "Failed"
	Bytes           = "Bytes"
	DurationSeconds = "DurationSeconds"
	Listed          = "Listed"
	// Succeeded is 1 when a run of the whole bucket (no prefix, not a dry run) succeeded, else 0:
	// the silence alarm's metric, so a dry run or a one-folder run does not hide missing backups.
	Succeeded = "Succeeded"
)

type metric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type directive struct {
	Namespace  string     `json:"Namespace"`
	Dimensions [][]string `json:"Dimensions"`
	Metrics    []metric   `json:"Metrics"`
}

type metadata struct {
	Timestamp         int64       `json:"Timestamp"`
	CloudWatchMetrics []directive `json:"CloudWatchMetrics"`
}

// document is one EMF line: the metadata, the dimensions' values, the metrics' values and the
// execution (a property for Logs Insights, not a dimension).
type document struct {
	AWS             metadata `json:"_aws"`
	StateMachine    string   `json:"StateMachine"`
	Kind            string   `json:"Kind"`
	Execution       string   `json:"Execution"`
	Status          string   `json:"Status"`
	Copied          int64    `json:"Copied"`
	Deleted         int64    `json:"Deleted"`
	Failed          int64    `json:"Failed"`
	Bytes           int64    `json:"Bytes"`
	DurationSeconds float64  `json:"DurationSeconds"`
	Listed          int64    `json:"Listed"`
	Succeeded       int      `json:"Succeeded"`
}

// Line is r's EMF line (without its newline) for the state machine stateMachine, kind "backup" or
// "restore", durationSeconds long, stamped at.
func Line(r report.Report, stateMachine, kind string, durationSeconds float64, at time.Time) []byte {
	d := document{
		AWS: metadata{Timestamp: at.UnixMilli(), CloudWatchMetrics: []directive{{
			Namespace:  DefaultNamespace,
			Dimensions: [][]string{{"StateMachine", "Kind"}},
			Metrics: []metric{
				{Copied, "Count"}, {Deleted, "Count"}, {Failed, "Count"}, {Bytes, "Bytes"},
				{DurationSeconds, "Seconds"}, {Listed, "Count"}, {Succeeded, "Count"},
			},
		}}},
		StateMachine: stateMachine, Kind: kind, Execution: r.Execution, Status: r.Status,
		Copied: r.Copied, Deleted: r.Deleted, Failed: r.Failed, Bytes: r.BytesCopied,
		DurationSeconds: durationSeconds, Listed: r.Listed,
	}
	if r.Status == report.Succeeded && !r.DryRun && r.Prefix == "" {
		d.Succeeded = 1
	}
	b, _ := json.Marshal(d) // plain types: cannot fail
	return b
}
