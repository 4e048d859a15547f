package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/bucketvault/bucketvault/shared/destination"
	"github.com/bucketvault/bucketvault/shared/s3client"
	"github.com/bucketvault/bucketvault/statemachine/localrun"
)

// childFlag makes the benchmark's own binary run one local backup and exit: the runner of the
// destinations and scale scenarios (runChild starts it).
//
// The bucketvault command does not pass DESTINATIONS on to the functions it runs locally
// (localrun.FunctionVariables does not list it), so those scenarios run the same local runner
// the command uses (localrun.Runner: every function in-process, one shared client sized by
// localrun.Connections) in a process of their own, with the functions' variables from its
// environment and DESTINATIONS as well. Both sides of every comparison in those scenarios run
// through it.
const childFlag = "-run-backup"

// heapSampleEvery is how often the child samples its Go heap.
const heapSampleEvery = 50 * time.Millisecond

// childOutput is what the child prints on stdout: the run's report as stored, and the peak of
// its Go heap.
type childOutput struct {
	Status string          `json:"status"`
	Error  string          `json:"error,omitempty"`
	Report json.RawMessage `json:"report"`
	// HeapPeakBytes is the largest /memory/classes/heap/objects:bytes sampled (live objects and
	// those not yet swept), every heapSampleEvery.
	HeapPeakBytes uint64 `json:"heapPeakBytes"`
}

// runBackupChild runs one backup execution (input {}) in this process and prints childOutput.
func runBackupChild(ctx context.Context) error {
	env := localrun.FunctionEnv(os.LookupEnv)
	if v, ok := os.LookupEnv(destination.Variable); ok {
		env[destination.Variable] = v
	}
	client, err := s3client.New(ctx, s3client.Options{MaxConns: localrun.Connections(env, nil)})
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	runner := &localrun.Runner{S3: client, Env: env, Logger: logger}
	peak := sampleHeap()
	res, err := runner.Backup(ctx, localrun.NewExecutionName(time.Now()), []byte(`{}`))
	out := childOutput{HeapPeakBytes: peak()}
	if res == nil {
		return err
	}
	out.Status, out.Report = res.Execution.Status, res.ReportJSON
	if err != nil {
		out.Error = err.Error()
	}
	if res.Execution.Error != "" {
		out.Error += " " + res.Execution.Error + ": " + res.Execution.Cause
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// sampleHeap samples the Go heap's objects every heapSampleEvery until the returned function is
// called, which returns the largest sample.
func sampleHeap() func() uint64 {
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() {
		metrics.Read(sample)
		if v := sample[0].Value; v.Kind() == metrics.KindUint64 && v.Uint64() > peak.Load() {
			peak.Store(v.Uint64())
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(heapSampleEvery)
		defer t.Stop()
		for {
			read()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		<-done
		read()
		return peak.Load()
	}
}
