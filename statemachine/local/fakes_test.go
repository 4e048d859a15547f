package local

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// fakeS3 is an in-memory, recording S3: buckets of objects, listed in key order a few keys
// per page so that pagination is exercised.
type fakeS3 struct {
	mu       sync.Mutex
	buckets  map[string]map[string][]byte
	pageSize int
	lists    int                    // ListObjectsV2 calls
	puts     []string               // keys written, in order
	failPut  func(key string) error // optional PutObject failure
	modified time.Time
}

func newFakeS3(buckets ...string) *fakeS3 {
	f := &fakeS3{buckets: map[string]map[string][]byte{}, pageSize: 2, modified: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}
	for _, b := range buckets {
		f.buckets[b] = map[string][]byte{}
	}
	return f
}

func (f *fakeS3) put(bucket, key, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buckets[bucket][key] = []byte(body)
}

func (f *fakeS3) object(t *testing.T, bucket, key string) []byte {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.buckets[bucket][key]
	if !ok {
		t.Fatalf("no object s3://%s/%s; have %v", bucket, key, f.keys(bucket))
	}
	return b
}

func (f *fakeS3) keys(bucket string) []string {
	var keys []string
	for k := range f.buckets[bucket] {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func etag(body []byte) string {
	sum := md5.Sum(body)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

func (f *fakeS3) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	objs, ok := f.buckets[aws.ToString(in.Bucket)]
	if !ok {
		return nil, &types.NoSuchBucket{Message: aws.String("The specified bucket does not exist")}
	}
	var keys []string
	for _, k := range f.keys(aws.ToString(in.Bucket)) {
		if strings.HasPrefix(k, aws.ToString(in.Prefix)) {
			keys = append(keys, k)
		}
	}
	start, _ := strconv.Atoi(aws.ToString(in.ContinuationToken))
	end := min(start+f.pageSize, len(keys))
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(end < len(keys))}
	if end < len(keys) {
		out.NextContinuationToken = aws.String(strconv.Itoa(end))
	}
	for _, k := range keys[start:end] {
		out.Contents = append(out.Contents, types.Object{
			Key: aws.String(k), ETag: aws.String(etag(objs[k])), Size: aws.Int64(int64(len(objs[k]))),
			LastModified: aws.Time(f.modified), StorageClass: types.ObjectStorageClassStandard,
		})
	}
	return out, nil
}

func (f *fakeS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	objs, ok := f.buckets[aws.ToString(in.Bucket)]
	if !ok {
		return nil, &types.NoSuchBucket{Message: aws.String("The specified bucket does not exist")}
	}
	b, ok := objs[aws.ToString(in.Key)]
	if !ok {
		return nil, &types.NoSuchKey{Message: aws.String("The specified key does not exist.")}
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(b))}, nil
}

func (f *fakeS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := aws.ToString(in.Key)
	if f.failPut != nil {
		if err := f.failPut(key); err != nil {
			return nil, err
		}
	}
	objs, ok := f.buckets[aws.ToString(in.Bucket)]
	if !ok {
		return nil, &types.NoSuchBucket{Message: aws.String("The specified bucket does not exist")}
	}
	objs[key] = body
	f.puts = append(f.puts, key)
	return &s3.PutObjectOutput{}, nil
}

// sleeps records the delays the executor asked for instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	ds []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ds = append(s.ds, d)
	return ctx.Err()
}

func (s *sleeps) seconds() []float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []float64
	for _, d := range s.ds {
		out = append(out, d.Seconds())
	}
	return out
}

// fn wraps a typed handler the way callers do: lambda.NewHandler.
func fn(h any) FunctionConfig { return FunctionConfig{Handler: lambda.NewHandler(h)} }

// echo returns its input.
var echo = fn(func(in json.RawMessage) (json.RawMessage, error) { return in, nil })

// testOptions are the defaults the tests run with: recorded sleeps, no S3.
func testOptions(fns map[string]FunctionConfig) Options {
	return Options{StateMachineName: "sm", Functions: fns, Sleep: (&sleeps{}).sleep}
}

func mustNew(t *testing.T, def string, opts Options) *Executor {
	t.Helper()
	e, err := New([]byte(def), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func mustRun(t *testing.T, e *Executor, input string) *Execution {
	t.Helper()
	x, err := e.Run(context.Background(), "test", []byte(input))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return x
}

// jsonEqual compares JSON texts semantically.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want invalid JSON %s: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("got  %s\nwant %s", gb, wb)
	}
}

func eventTypes(x *Execution) []string {
	var out []string
	for _, e := range x.Events {
		out = append(out, e.Type)
	}
	return out
}

// errNamed is a named error type for errorType tests.
type errNamed struct{ msg string }

func (e *errNamed) Error() string { return e.msg }

var errPlain = errors.New("plain")

func asStartError(err error, target **StartError) bool { return errors.As(err, target) }

func jsonUnmarshalStrict(b []byte, v any) error { return json.Unmarshal(b, v) }

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }
