package s3copy

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/change"
	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// Under SSE-KMS a copy's ETag is never the source's, so comparing ETags cannot tell that a failed
// write landed or that a retried batch's copy is already there: both would write again and add a
// version. In the backup bucket an SSE-KMS version of the source's size whose ETag is not the
// listed one (Request.Prior) is taken as the copy; a restore target, and a changed key whose Prior
// was not listed, keep the strict rule.
func TestKMSChecks(t *testing.T) {
	const (
		lost   = "lost"   // the first answer of op is lost; the write landed
		retry  = "retry"  // a first Copy, then a Copy in verify mode (a retried batch)
		verify = "verify" // a Copy in verify mode only
	)
	tests := []struct {
		name string
		sse  types.ServerSideEncryption // the backup bucket's default encryption
		// prepare stores the source object "k" (and any backup version) before the listing.
		prepare func(f *s3fake.S3)
		// afterListing runs after the listing, before any Copy.
		afterListing func(f *s3fake.S3)
		mode, op     string
		notBackup    bool // the destination is a restore target: BackupDest false
		priorUnknown bool // a changed key whose Prior was not listed: PriorListed false
		want         Outcome
		wantWrites   int // CopyObject and CompleteMultipartUpload calls, refused ones included
		wantVersions int
		wantChanged  bool // Result.SourceChanged
	}{
		{name: "lost CopyObject answer, new key", sse: types.ServerSideEncryptionAwsKms, prepare: single,
			mode: lost, op: "CopyObject", want: Copied, wantWrites: 1, wantVersions: 1},
		{name: "lost CopyObject answer, aws:kms:dsse", sse: types.ServerSideEncryptionAwsKmsDsse, prepare: single,
			mode: lost, op: "CopyObject", want: Copied, wantWrites: 1, wantVersions: 1},
		{name: "lost CopyObject answer, changed key", sse: types.ServerSideEncryptionAwsKms, prepare: changed,
			mode: lost, op: "CopyObject", want: Copied, wantWrites: 1, wantVersions: 2},
		{name: "lost CompleteMultipartUpload answer", sse: types.ServerSideEncryptionAwsKms, prepare: multi,
			mode: lost, op: "CompleteMultipartUpload", want: Copied, wantWrites: 1, wantVersions: 1},
		{name: "retried batch, new key", sse: types.ServerSideEncryptionAwsKms, prepare: single,
			mode: retry, want: AlreadyPresent, wantWrites: 1, wantVersions: 1},
		{name: "retried batch, changed key", sse: types.ServerSideEncryptionAwsKms, prepare: changed,
			mode: retry, want: AlreadyPresent, wantWrites: 1, wantVersions: 2},
		{name: "retried batch, multipart", sse: types.ServerSideEncryptionAwsKms, prepare: multi,
			mode: retry, want: AlreadyPresent, wantWrites: 1, wantVersions: 1},
		{name: "backup ETag still the listed one", sse: types.ServerSideEncryptionAwsKms, prepare: changed,
			mode: verify, want: Copied, wantWrites: 1, wantVersions: 2},
		{name: "restore target is checked strictly", sse: types.ServerSideEncryptionAwsKms, prepare: single,
			mode: retry, notBackup: true, want: Copied, wantWrites: 2, wantVersions: 2},
		{name: "changed key without a listed Prior is checked strictly", sse: types.ServerSideEncryptionAwsKms, prepare: changed,
			mode: retry, priorUnknown: true, want: Copied, wantWrites: 2, wantVersions: 3},
		{name: "a version written since, not SSE-KMS", sse: types.ServerSideEncryptionAes256, prepare: single,
			afterListing: func(f *s3fake.S3) { f.Put("bak", "k", []byte("CONTENT")) },
			mode:         verify, want: Copied, wantWrites: 1, wantVersions: 2},
		{name: "an SSE-KMS version of another size written since", sse: types.ServerSideEncryptionAwsKms, prepare: single,
			afterListing: func(f *s3fake.S3) { f.Put("bak", "k", []byte("other size")) },
			mode:         verify, want: Copied, wantWrites: 1, wantVersions: 2},
		// A first attempt copied the source as it then was, which a retry cannot tell from a copy
		// of the listed object by the backup alone: it checks the source, and copies again rather
		// than report the listed content present. Each attempt: one copy refused, one made.
		{name: "retried batch, source changed since the listing", sse: types.ServerSideEncryptionAwsKms, prepare: single,
			afterListing: func(f *s3fake.S3) { f.Put("src", "k", []byte("CONTENT")) },
			mode:         retry, want: Copied, wantWrites: 4, wantVersions: 2, wantChanged: true},
		{name: "retried batch, source rewritten with the same content", sse: types.ServerSideEncryptionAwsKms, prepare: single,
			afterListing: func(f *s3fake.S3) { f.Put("src", "k", []byte("content")) },
			mode:         retry, want: Copied, wantWrites: 2, wantVersions: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake()
			f.SetEncryption("bak", tt.sse)
			tt.prepare(f)
			req := Request{SourceBucket: "src", DestBucket: "bak", Key: "k", Listed: listed(f, "k"), BackupDest: !tt.notBackup, PriorListed: !tt.priorUnknown}
			if vs := f.Versions("bak", "k"); len(vs) > 0 && !tt.priorUnknown {
				req.Prior = vs[len(vs)-1].ETag
			}
			if tt.afterListing != nil {
				tt.afterListing(f)
			}
			c := testCopier(f)
			switch tt.mode {
			case lost:
				loseFirst(f, tt.op)
			case retry:
				if _, err := c.Copy(context.Background(), req); err != nil {
					t.Fatal(err)
				}
			}
			req.Verify = tt.mode != lost
			res, err := c.Copy(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			// The test's own Puts are not calls: these are the Copier's.
			writes := f.Count("CopyObject") + f.Count("CompleteMultipartUpload")
			if writes != tt.wantWrites {
				t.Errorf("%d writes, want %d", writes, tt.wantWrites)
			}
			if n := len(f.Versions("bak", "k")); n != tt.wantVersions {
				t.Errorf("%d versions in the backup, want %d", n, tt.wantVersions)
			}
			got := current(t, f, "k")
			if res.Outcome != tt.want || res.DestETag != got.ETag || res.SourceChanged != tt.wantChanged {
				t.Fatalf("result %+v; want %s with DestETag %s (source changed: %v)", res, tt.want, got.ETag, tt.wantChanged)
			}
			if tt.sse == types.ServerSideEncryptionAwsKms && change.NormalizeETag(got.ETag) == change.NormalizeETag(res.Object.ETag) {
				t.Errorf("the SSE-KMS backup's ETag %s is the source's: the fake does not behave as SSE-KMS", got.ETag)
			}
		})
	}
}

// single stores a single-part source object.
func single(f *s3fake.S3) { f.Put("src", "k", []byte("content")) }

// changed stores a source object and an older backup version of the same size.
func changed(f *s3fake.S3) {
	f.Put("bak", "k", []byte("CONTENT"))
	f.Put("src", "k", []byte("content"))
}

// multi stores a source object uploaded in parts.
func multi(f *s3fake.S3) {
	f.PutMultipart("src", "k", []byte("part one.."), []byte("part two.."), []byte("three"))
}

// A lost answer after a verify that found an earlier attempt's version: the look compares with
// what the destination held when this request started writing, not with the listing, so that
// version (the copy of an older source) is not taken for this request's write.
func TestKMSLookComparesWithTheVersionBeforeTheWrite(t *testing.T) {
	f := newFake()
	f.SetEncryption("bak", types.ServerSideEncryptionAwsKms)
	f.Put("src", "k", []byte("v1"))
	req := Request{SourceBucket: "src", DestBucket: "bak", Key: "k", Listed: listed(f, "k"), BackupDest: true, PriorListed: true}
	// A first attempt copied version 2, which the source had by then.
	f.Put("src", "k", []byte("version 2"))
	if _, err := testCopier(f).Copy(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	// Then the source became version 3 (of version 2's size), and the retried batch's copy of it
	// fails without landing. Its CopyObject calls: refused (the source is not v1), failed, made.
	f.Put("src", "k", []byte("version 3"))
	failNth(f, "CopyObject", 2, "SlowDown")
	req.Verify = true
	res, err := testCopier(f).Copy(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	got := current(t, f, "k")
	if string(got.Body) != "version 3" || res.Outcome != Copied || !res.SourceChanged || res.DestETag != got.ETag {
		t.Fatalf("result %+v, backup holds %q; want version 3 copied", res, got.Body)
	}
}
