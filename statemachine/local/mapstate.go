package local

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

const (
	maxInlineConcurrency      = 40
	maxDistributedConcurrency = 10000
)

// mapAttempt runs one attempt of a Map state.
func (r *runner) mapAttempt(ctx context.Context, sr *stateRun, raw any, th *thread) (any, error) {
	eff, err := r.selectPath(sr, sr.st.inputPath, raw)
	if err != nil {
		return nil, err
	}
	var result any
	if sr.st.mp.distributed {
		result, err = r.distributedMap(ctx, sr, eff, th)
	} else {
		result, err = r.inlineMap(ctx, sr, eff, th)
	}
	if err != nil {
		return nil, err
	}
	return r.finish(sr, raw, result)
}

// items reads ItemsPath from the effective input.
func (r *runner) items(sr *stateRun, eff any) ([]any, error) {
	p := sr.st.mp.itemsPath
	v, ok := r.read(sr, p, eff)
	if !ok {
		return nil, r.fail(sr, "States.Runtime", fmt.Sprintf("Invalid path '%s' : No results for path: %s", p.src, p.normalized()))
	}
	items, ok := v.([]any)
	if !ok {
		return nil, r.fail(sr, "States.Runtime", fmt.Sprintf("The JSONPath '%s' specified for the field 'ItemsPath' must point to an array, found %s", p.src, typeName(v)))
	}
	return items, nil
}

// concurrency is the Map's MaxConcurrency, or the value MaxConcurrencyPath selects from the
// effective input (a non-negative integer, 0 for no limit), capped at most.
func (r *runner) concurrency(sr *stateRun, eff any, most int) (int, error) {
	ms := sr.st.mp
	n := ms.maxConcurrency
	if p := ms.maxConcurrencyPath; p != nil {
		v, ok := r.read(sr, p, eff)
		if !ok {
			return 0, r.fail(sr, "States.Runtime", fmt.Sprintf("Invalid path '%s' : No results for path: %s", p.src, p.normalized()))
		}
		jn, isNum := v.(json.Number)
		i, err := jn.Int64()
		if !isNum || err != nil || i < 0 || i > 1<<31-1 {
			return 0, r.fail(sr, "States.Runtime", fmt.Sprintf("The JSONPath '%s' specified for the field 'MaxConcurrencyPath' must point to a non-negative integer, found %s", p.src, v))
		}
		n = int(i)
	}
	if n == 0 || n > most {
		n = most
	}
	return n, nil
}

// selectItem builds an iteration's input with ItemSelector, where $ is the Map's effective
// input and $$.Map.Item holds the item.
func (r *runner) selectItem(sr *stateRun, eff any, index int, item any) (any, error) {
	if sr.st.mp.itemSelector == nil {
		return item, nil
	}
	isr := *sr
	isr.item = &mapItem{index: index, value: item}
	return r.template(&isr, sr.st.mp.itemSelector, eff)
}

func (r *runner) inlineMap(ctx context.Context, sr *stateRun, eff any, th *thread) (any, error) {
	st := sr.st
	items, err := r.items(sr, eff)
	if err != nil {
		return nil, err
	}
	th.add("MapStateStarted", map[string]any{"length": num(int64(len(items)))})
	if err := th.limit(); err != nil {
		return nil, err
	}
	limit, err := r.concurrency(sr, eff, maxInlineConcurrency)
	if err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	results := make([]any, len(items))
	for i, item := range items {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			it := th.fork()
			details := map[string]any{"name": st.name, "index": num(int64(i))}
			it.add("MapIterationStarted", details)
			in, err := r.selectItem(sr, eff, i, item)
			if err == nil {
				err = r.checkSize(sr, in, "input")
			}
			var out any
			if err == nil {
				out, err = r.runMachine(gctx, st.mp.proc, in, it)
			}
			_, failed := asFailure(err)
			switch {
			case err == nil:
				results[i] = out
				it.add("MapIterationSucceeded", details)
			case failed:
				it.add("MapIterationFailed", details)
			default:
				it.add("MapIterationAborted", details)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if err := r.checkSize(sr, results, "result"); err != nil {
		return nil, err
	}
	th.add("MapStateSucceeded", nil)
	return results, nil
}

// mapRun is one run of a Distributed Map: items are streamed from the reader (or ItemsPath)
// to child executions; only counters, the ResultWriter's pending file buffers and (without a
// ResultWriter) the outputs are kept.
type mapRun struct {
	r        *runner
	sr       *stateRun
	eff      any
	limit    int // children at once: MaxConcurrency or MaxConcurrencyPath, at most 10,000
	arn      string
	childSM  string // state machine ARN of the children
	childSMN string
	writer   *resultWriter

	mu         sync.Mutex
	total      int64
	failed     int64
	totalKnown bool
	stopped    bool
	fatal      *failure
	outputs    []any // without ResultWriter: child outputs in item order
	outBytes   int
	overflow   bool
}

func (r *runner) distributedMap(ctx context.Context, sr *stateRun, eff any, th *thread) (any, error) {
	st, ms := sr.st, sr.st.mp
	var src itemSource
	length := 0
	if ms.reader != nil {
		params, err := r.template(sr, ms.reader.params, eff)
		if err != nil {
			return nil, err
		}
		if src, err = r.newReader(sr, ms.reader, params); err != nil {
			return nil, err
		}
	} else {
		items, err := r.items(sr, eff)
		if err != nil {
			return nil, err
		}
		src, length = &sliceSource{items: items}, len(items)
	}
	limit, err := r.concurrency(sr, eff, maxDistributedConcurrency)
	if err != nil {
		return nil, err
	}
	runID := uuid.NewString()
	base := fmt.Sprintf("%s:%s", r.e.opts.Region, r.e.opts.Account)
	smName := r.x.smName + "/" + ms.label
	m := &mapRun{
		r: r, sr: sr, eff: eff, limit: limit,
		arn:      fmt.Sprintf("arn:aws:states:%s:mapRun:%s:%s", base, smName, runID),
		childSM:  fmt.Sprintf("arn:aws:states:%s:stateMachine:%s", base, smName),
		childSMN: smName,
	}
	if ms.writer != nil {
		params, err := r.template(sr, ms.writer, eff)
		if err != nil {
			return nil, err
		}
		if m.writer, err = r.newResultWriter(sr, params, runID, m.arn); err != nil {
			return nil, err
		}
	}
	th.add("MapStateStarted", map[string]any{"length": num(int64(length))})
	th.add("MapRunStarted", map[string]any{"mapRunArn": m.arn})
	if err := th.limit(); err != nil {
		return nil, err // no child starts: the Map Run's events were never recorded
	}
	r.e.log.Debug("map run started", "execution", r.x.name, "state", st.name, "mapRunArn", m.arn)
	result, err := m.run(ctx, src)
	if err != nil {
		if f, ok := asFailure(err); ok {
			th.add("MapRunFailed", errorDetails(f, nil))
		}
		return nil, err
	}
	th.add("MapRunSucceeded", nil)
	if err := r.checkSize(sr, result, "result"); err != nil {
		return nil, err
	}
	th.add("MapStateSucceeded", nil)
	return result, nil
}

func (m *mapRun) run(ctx context.Context, src itemSource) (any, error) {
	var g errgroup.Group
	g.SetLimit(m.limit)
	var readErr error
	index := 0
	for !m.isStopped() && ctx.Err() == nil {
		item, ok, err := src.next(ctx)
		if err != nil {
			readErr = err
			break
		}
		if !ok {
			m.mu.Lock()
			m.totalKnown = true
			m.checkThreshold()
			m.mu.Unlock()
			break
		}
		i := index
		index++
		m.mu.Lock()
		m.total++
		m.mu.Unlock()
		in, err := m.r.selectItem(m.sr, m.eff, i, item)
		if err != nil {
			f, _ := asFailure(err)
			m.mu.Lock()
			m.fatal, m.stopped = f, true
			m.mu.Unlock()
			break
		}
		g.Go(func() error {
			m.child(ctx, i, in)
			return nil
		})
	}
	g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if m.isStopped() && readErr == nil && m.writer != nil {
		// The rest of the items never start: the ResultWriter lists them as PENDING.
		for i := index; !m.writer.failed(); i++ {
			item, ok, err := src.next(ctx)
			if err != nil || !ok {
				break
			}
			if in, err := m.r.selectItem(m.sr, m.eff, i, item); err == nil {
				m.pending(ctx, in)
			}
		}
	}
	var f *failure
	m.mu.Lock()
	switch {
	case readErr != nil:
		f, _ = asFailure(readErr)
		if f == nil {
			f = &failure{name: "States.ItemReaderFailed", cause: readErr.Error()}
		}
	case m.fatal != nil:
		f = m.fatal
	case m.thresholdBroken():
		f = &failure{name: "States.ExceedToleratedFailureThreshold", cause: "The specified tolerated failure threshold was exceeded"}
	}
	outputs, overflow := m.outputs, m.overflow
	m.mu.Unlock()
	if m.writer != nil {
		key, err := m.writer.finish(ctx)
		if err != nil {
			return nil, &failure{name: "States.ResultWriterFailed", cause: err.Error()}
		}
		if f != nil {
			return nil, f
		}
		return map[string]any{"MapRunArn": m.arn, "ResultWriterDetails": map[string]any{"Bucket": m.writer.bucket, "Key": key}}, nil
	}
	if f != nil {
		return nil, f
	}
	if overflow {
		return nil, &failure{name: "States.DataLimitExceeded", cause: fmt.Sprintf("The state/task '%s' returned a result with a size exceeding the maximum number of bytes service limit.", m.sr.st.name)}
	}
	result := make([]any, m.total)
	copy(result, outputs)
	return result, nil
}

func (m *mapRun) isStopped() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopped
}

// thresholdBroken applies ToleratedFailureCount/Percentage (both 0 when neither is set; only
// the set ones otherwise). The percentage is judged only once the total is known.
func (m *mapRun) thresholdBroken() bool {
	ms := m.sr.st.mp
	if (ms.tolCountSet || !ms.tolPctSet) && m.failed > ms.tolCount {
		return true
	}
	return ms.tolPctSet && m.totalKnown && m.total > 0 && float64(m.failed)*100 > ms.tolPct*float64(m.total)
}

// checkThreshold stops launching children once the threshold is certainly broken. Callers
// hold m.mu.
func (m *mapRun) checkThreshold() {
	if m.thresholdBroken() {
		m.stopped = true
	}
}

// child runs item i as a child execution and records its outcome.
func (m *mapRun) child(ctx context.Context, i int, in any) {
	if m.isStopped() {
		m.pending(ctx, in)
		return
	}
	name := uuid.NewString()
	start := time.Now()
	cr := &runner{e: m.r.e, x: execCtx{
		id:   fmt.Sprintf("arn:aws:states:%s:%s:execution:%s:%s", m.r.e.opts.Region, m.r.e.opts.Account, m.childSMN, name),
		name: name, roleArn: m.r.x.roleArn, startTime: awsTime(start), input: in,
		smID: m.childSM, smName: m.childSMN,
	}}
	th := &thread{h: &history{}}
	th.add("ExecutionStarted", nil)
	out, err := m.runChild(ctx, cr, in, th)
	stop := time.Now()
	f, failed := asFailure(err)
	if err != nil && !failed {
		return // aborted with the parent
	}
	rec := map[string]any{
		"ExecutionArn": cr.x.id, "Input": jsonText(in), "InputDetails": map[string]any{"Included": true},
		"Name": name, "RedriveCount": num(0), "StartDate": awsTime(start), "StateMachineArn": m.childSM,
		"StopDate": awsTime(stop),
	}
	status := "SUCCEEDED"
	if failed {
		status = "FAILED"
		rec["Error"], rec["Cause"] = f.name, f.cause
		rec["RedriveStatus"] = "REDRIVABLE_BY_MAP_RUN"
	} else {
		rec["Output"], rec["OutputDetails"] = jsonText(out), map[string]any{"Included": true}
		rec["RedriveStatus"], rec["RedriveStatusReason"] = "NOT_REDRIVABLE", "Execution is SUCCEEDED and cannot be redriven"
	}
	rec["Status"] = status
	m.mu.Lock()
	if failed {
		m.failed++
		m.checkThreshold()
	}
	if m.writer == nil {
		var v any = out
		if failed {
			v = map[string]any{"Error": f.name, "Cause": f.cause}
		}
		m.store(i, v)
	}
	m.mu.Unlock()
	if m.writer != nil {
		if err := m.writer.add(ctx, status, rec); err != nil {
			m.mu.Lock()
			m.stopped = true
			m.mu.Unlock()
		}
	}
}

func (m *mapRun) runChild(ctx context.Context, cr *runner, in any, th *thread) (any, error) {
	if b, err := encodeJSON(in); err == nil && len(b) > maxPayload {
		return nil, &failure{name: "States.DataLimitExceeded", cause: "The child execution input has a size exceeding the maximum number of bytes service limit."}
	}
	return cr.runMachine(ctx, m.sr.st.mp.proc, in, th)
}

// store keeps a child's output at its item index (no ResultWriter). Past 256 KiB the Map's
// result is certain to be too large, so outputs are dropped to bound memory. Callers hold m.mu.
func (m *mapRun) store(i int, v any) {
	if m.overflow {
		return
	}
	m.outBytes += len(jsonText(v)) + 1
	if m.outBytes > maxPayload {
		m.overflow, m.outputs = true, nil
		return
	}
	for len(m.outputs) <= i {
		m.outputs = append(m.outputs, nil)
	}
	m.outputs[i] = v
}

// pending records an item whose child was never started because the run stopped.
func (m *mapRun) pending(ctx context.Context, in any) {
	if m.writer == nil {
		return
	}
	rec := map[string]any{
		"Input": jsonText(in), "InputDetails": map[string]any{"Included": true}, "RedriveCount": num(0),
		"StateMachineArn": m.childSM, "Status": "PENDING",
	}
	if err := m.writer.add(ctx, "PENDING", rec); err != nil {
		m.mu.Lock()
		m.stopped = true
		m.mu.Unlock()
	}
}
