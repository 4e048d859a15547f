package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// itemSource streams a Distributed Map's items.
type itemSource interface {
	// next returns the next item; ok is false after the last one.
	next(ctx context.Context) (item any, ok bool, err error)
}

type sliceSource struct {
	items []any
	i     int
}

func (s *sliceSource) next(context.Context) (any, bool, error) {
	if s.i >= len(s.items) {
		return nil, false, nil
	}
	s.i++
	return s.items[s.i-1], true, nil
}

// limitSource applies ReaderConfig.MaxItems.
type limitSource struct {
	src    itemSource
	max, n int64
}

func (s *limitSource) next(ctx context.Context) (any, bool, error) {
	if s.n >= s.max {
		return nil, false, nil
	}
	s.n++
	return s.src.next(ctx)
}

// readerFailure is an ItemReader error as Step Functions reports it.
func readerFailure(err error) *failure {
	return &failure{name: "States.ItemReaderFailed", cause: err.Error()}
}

// listSource lists objects page by page: one item per object, flat (no delimiter).
type listSource struct {
	p    *s3.ListObjectsV2Paginator
	page []any
	done bool
}

func (s *listSource) next(ctx context.Context) (any, bool, error) {
	for len(s.page) == 0 {
		if s.done || !s.p.HasMorePages() {
			return nil, false, nil
		}
		out, err := s.p.NextPage(ctx)
		if err != nil {
			s.done = true
			return nil, false, readerFailure(err)
		}
		for _, o := range out.Contents {
			class := string(o.StorageClass)
			if class == "" {
				class = "STANDARD"
			}
			var modified int64
			if o.LastModified != nil {
				modified = o.LastModified.Unix()
			}
			s.page = append(s.page, map[string]any{
				"Etag": aws.ToString(o.ETag), "Key": aws.ToString(o.Key), "LastModified": num(modified),
				"Size": num(aws.ToInt64(o.Size)), "StorageClass": class,
			})
		}
	}
	item := s.page[0]
	s.page = s.page[1:]
	return item, true, nil
}

// getSource reads a JSON array or JSON Lines object, decoding one item at a time.
type getSource struct {
	s3        S3
	in        *s3.GetObjectInput
	inputType string
	body      io.ReadCloser
	dec       *json.Decoder
	lines     *bufio.Reader
	done      bool
}

func (s *getSource) next(ctx context.Context) (any, bool, error) {
	if s.done {
		return nil, false, nil
	}
	item, ok, err := s.read(ctx)
	if err != nil || !ok {
		s.done = true
		if s.body != nil {
			s.body.Close()
		}
	}
	if err != nil {
		return nil, false, readerFailure(err)
	}
	return item, ok, nil
}

func (s *getSource) read(ctx context.Context) (any, bool, error) {
	if s.body == nil {
		out, err := s.s3.GetObject(ctx, s.in)
		if err != nil {
			return nil, false, err
		}
		s.body = out.Body
		if s.inputType == "JSONL" {
			s.lines = bufio.NewReader(s.body)
		} else {
			s.dec = json.NewDecoder(s.body)
			s.dec.UseNumber()
			if tok, err := s.dec.Token(); err != nil || tok != json.Delim('[') {
				return nil, false, fmt.Errorf("s3://%s/%s: the JSON input must be an array", aws.ToString(s.in.Bucket), aws.ToString(s.in.Key))
			}
		}
	}
	if s.lines != nil {
		for {
			line, err := s.lines.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				v, derr := decodeJSON(line)
				if derr != nil {
					return nil, false, fmt.Errorf("s3://%s/%s: invalid JSON line: %w", aws.ToString(s.in.Bucket), aws.ToString(s.in.Key), derr)
				}
				return v, true, nil
			}
			if errors.Is(err, io.EOF) {
				return nil, false, nil
			}
			if err != nil {
				return nil, false, err
			}
		}
	}
	if !s.dec.More() {
		return nil, false, nil
	}
	var v any
	if err := s.dec.Decode(&v); err != nil {
		return nil, false, fmt.Errorf("s3://%s/%s: %w", aws.ToString(s.in.Bucket), aws.ToString(s.in.Key), err)
	}
	return v, true, nil
}

// newReader builds the ItemReader's item stream from its evaluated Parameters.
func (r *runner) newReader(sr *stateRun, spec *readerSpec, params any) (itemSource, error) {
	p, err := r.stringParams(sr, "ItemReader.Parameters", params)
	if err != nil {
		return nil, err
	}
	var src itemSource
	if spec.resource == resS3List {
		in := &s3.ListObjectsV2Input{Bucket: aws.String(p["Bucket"])}
		if prefix, ok := p["Prefix"]; ok {
			in.Prefix = aws.String(prefix)
		}
		src = &listSource{p: s3.NewListObjectsV2Paginator(r.e.opts.S3, in)}
	} else {
		in := &s3.GetObjectInput{Bucket: aws.String(p["Bucket"]), Key: aws.String(p["Key"])}
		if v, ok := p["VersionId"]; ok {
			in.VersionId = aws.String(v)
		}
		src = &getSource{s3: r.e.opts.S3, in: in, inputType: spec.inputType}
	}
	if spec.maxItems > 0 {
		src = &limitSource{src: src, max: spec.maxItems}
	}
	return src, nil
}

// stringParams checks that every evaluated S3 parameter is a string.
func (r *runner) stringParams(sr *stateRun, field string, params any) (map[string]string, error) {
	m, _ := params.(map[string]any)
	out := make(map[string]string, len(m))
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return nil, r.fail(sr, "States.Runtime", fmt.Sprintf("The field '%s.%s' must be a string, found %s", field, k, typeName(v)))
		}
		out[k] = s
	}
	return out, nil
}

const recordsPerFile = 1000

// resultWriter writes a Map Run's child results under <Prefix>/<mapRunUUID>/ as
// SUCCEEDED_n.json, FAILED_n.json and PENDING_n.json (rolling every 1,000 records) and
// manifest.json.
type resultWriter struct {
	s3     S3
	bucket string
	dir    string
	run    string // Map Run ARN
	mu     sync.Mutex
	buf    map[string][][]byte
	files  map[string][]any
	err    error
}

func (r *runner) newResultWriter(sr *stateRun, params any, runID, mapRunArn string) (*resultWriter, error) {
	p, err := r.stringParams(sr, "ResultWriter.Parameters", params)
	if err != nil {
		return nil, err
	}
	dir := runID + "/"
	if prefix := strings.TrimSuffix(p["Prefix"], "/"); prefix != "" {
		dir = prefix + "/" + dir
	}
	return &resultWriter{s3: r.e.opts.S3, bucket: p["Bucket"], dir: dir, run: mapRunArn, buf: map[string][][]byte{}, files: map[string][]any{}}, nil
}

func (w *resultWriter) add(ctx context.Context, status string, rec any) error {
	b, err := encodeJSON(rec)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	w.buf[status] = append(w.buf[status], b)
	if len(w.buf[status]) >= recordsPerFile {
		return w.flush(ctx, status)
	}
	return nil
}

func (w *resultWriter) failed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err != nil
}

// flush writes the buffered records of one status as the next file. Callers hold w.mu.
func (w *resultWriter) flush(ctx context.Context, status string) error {
	recs := w.buf[status]
	if len(recs) == 0 {
		return nil
	}
	body := append(append([]byte("["), bytes.Join(recs, []byte(","))...), ']')
	key := fmt.Sprintf("%s%s_%d.json", w.dir, status, len(w.files[status]))
	if err := w.put(ctx, key, body); err != nil {
		return err
	}
	w.files[status] = append(w.files[status], map[string]any{"Key": key, "Size": num(int64(len(body)))})
	w.buf[status] = nil
	return nil
}

func (w *resultWriter) put(ctx context.Context, key string, body []byte) error {
	_, err := w.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(w.bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType: aws.String("application/json"),
	})
	if err != nil {
		w.err = fmt.Errorf("write s3://%s/%s: %w", w.bucket, key, err)
	}
	return w.err
}

// finish writes the remaining records and the manifest; it returns the manifest's key.
func (w *resultWriter) finish(ctx context.Context) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return "", w.err
	}
	files := map[string]any{}
	for _, status := range []string{"FAILED", "PENDING", "SUCCEEDED"} {
		if err := w.flush(ctx, status); err != nil {
			return "", err
		}
		list := w.files[status]
		if list == nil {
			list = []any{}
		}
		files[status] = list
	}
	manifest, err := encodeJSON(map[string]any{"DestinationBucket": w.bucket, "MapRunArn": w.run, "ResultFiles": files})
	if err != nil {
		return "", err
	}
	key := w.dir + "manifest.json"
	return key, w.put(ctx, key, manifest)
}
