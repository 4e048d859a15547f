package console

// Test adapters over shared/s3fake, which ignores Delimiter and VersionId on reads: copied from
// shared/runlog (ListObjectsV2) and shared/browse (ListObjectVersions) tests.

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bucketvault/bucketvault/shared/s3fake"
)

// fakeS3 is s3fake with S3's Delimiter on both listings and VersionId on GetObject.
type fakeS3 struct {
	*s3fake.S3
}

// GetObject reads the version asked for, as S3 does.
func (f fakeS3) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	if in.VersionId == nil {
		return f.S3.GetObject(ctx, in, opts...)
	}
	for _, v := range f.S3.Versions(aws.ToString(in.Bucket), aws.ToString(in.Key)) {
		if v.VersionID == *in.VersionId {
			if v.DeleteMarker {
				return nil, s3fake.APIError("MethodNotAllowed")
			}
			return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(v.Body)), ContentLength: aws.Int64(int64(len(v.Body))), VersionId: in.VersionId}, nil
		}
	}
	return nil, s3fake.APIError("NoSuchVersion")
}

func (f fakeS3) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	return (&fakeDelim{inner: f.S3, fake: f.S3}).ListObjectVersions(ctx, in, opts...)
}

func (d fakeS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	if aws.ToString(in.Delimiter) == "" {
		return d.S3.ListObjectsV2(ctx, in, opts...)
	}
	prefix, delim := aws.ToString(in.Prefix), aws.ToString(in.Delimiter)
	type entry struct {
		name string
		obj  *types.Object
	}
	var all []entry
	p := s3.NewListObjectsV2Paginator(d.S3, &s3.ListObjectsV2Input{Bucket: in.Bucket, Prefix: in.Prefix})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx, opts...)
		if err != nil {
			return nil, err
		}
		for i, o := range out.Contents {
			rest := strings.TrimPrefix(aws.ToString(o.Key), prefix)
			if j := strings.Index(rest, delim); j >= 0 {
				cp := prefix + rest[:j+len(delim)]
				if len(all) == 0 || all[len(all)-1].name != cp {
					all = append(all, entry{name: cp})
				}
				continue
			}
			all = append(all, entry{name: aws.ToString(o.Key), obj: &out.Contents[i]})
		}
	}
	after := aws.ToString(in.StartAfter)
	if in.ContinuationToken != nil {
		after = *in.ContinuationToken
	}
	limit := 1000
	if d.PageSize > 0 {
		limit = d.PageSize
	}
	out := &s3.ListObjectsV2Output{}
	n := 0
	for _, e := range all {
		if e.name <= after {
			continue
		}
		if n == limit {
			out.IsTruncated = aws.Bool(true)
			out.NextContinuationToken = aws.String(after)
			break
		}
		n++
		after = e.name
		if e.obj == nil {
			out.CommonPrefixes = append(out.CommonPrefixes, types.CommonPrefix{Prefix: aws.String(e.name)})
		} else {
			out.Contents = append(out.Contents, *e.obj)
		}
	}
	return out, nil
}

// fakeDelim gives s3fake's ListObjectVersions S3's Delimiter (from shared/browse tests).
type fakeDelim struct {
	inner    *s3fake.S3
	fake     *s3fake.S3
	pageSize int
}

func (d *fakeDelim) ListObjectVersions(ctx context.Context, in *s3.ListObjectVersionsInput, opts ...func(*s3.Options)) (*s3.ListObjectVersionsOutput, error) {
	prefix, delim := aws.ToString(in.Prefix), aws.ToString(in.Delimiter)
	type entry struct {
		name, id string // key (or common prefix) and version id
		v        *types.ObjectVersion
		m        *types.DeleteMarkerEntry
	}
	// Every entry under prefix, in key order, newest first per key.
	byID := map[string]entry{}
	var keys []string
	var marker, idMarker *string
	for {
		out, err := d.inner.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: in.Bucket, Prefix: in.Prefix, KeyMarker: marker, VersionIdMarker: idMarker}, opts...)
		if err != nil {
			return nil, err
		}
		for i, v := range out.Versions {
			byID[aws.ToString(v.Key)+"\x00"+aws.ToString(v.VersionId)] = entry{name: aws.ToString(v.Key), id: aws.ToString(v.VersionId), v: &out.Versions[i]}
			keys = append(keys, aws.ToString(v.Key))
		}
		for i, m := range out.DeleteMarkers {
			byID[aws.ToString(m.Key)+"\x00"+aws.ToString(m.VersionId)] = entry{name: aws.ToString(m.Key), id: aws.ToString(m.VersionId), m: &out.DeleteMarkers[i]}
			keys = append(keys, aws.ToString(m.Key))
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		marker, idMarker = out.NextKeyMarker, out.NextVersionIdMarker
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var all []entry
	for _, k := range keys {
		if rest := strings.TrimPrefix(k, prefix); delim != "" && strings.Contains(rest, delim) {
			cp := prefix + rest[:strings.Index(rest, delim)+len(delim)]
			if len(all) == 0 || all[len(all)-1].name != cp {
				all = append(all, entry{name: cp})
			}
			continue
		}
		vs := d.fake.Versions(aws.ToString(in.Bucket), k)
		for i := len(vs) - 1; i >= 0; i-- {
			all = append(all, byID[k+"\x00"+vs[i].VersionID])
		}
	}
	start := 0
	switch {
	case in.VersionIdMarker != nil:
		for start < len(all) && !(all[start].name == aws.ToString(in.KeyMarker) && all[start].id == *in.VersionIdMarker) {
			start++
		}
		start++
	case in.KeyMarker != nil:
		for start < len(all) && all[start].name <= *in.KeyMarker {
			start++
		}
	}
	limit := int(aws.ToInt32(in.MaxKeys))
	if limit == 0 || (d.pageSize > 0 && d.pageSize < limit) {
		limit = d.pageSize
	}
	out := &s3.ListObjectVersionsOutput{}
	for i := start; i < len(all); i++ {
		if i-start == limit {
			last := all[i-1]
			out.IsTruncated, out.NextKeyMarker = aws.Bool(true), aws.String(last.name)
			if last.id != "" {
				out.NextVersionIdMarker = aws.String(last.id)
			}
			break
		}
		switch e := all[i]; {
		case e.v != nil:
			out.Versions = append(out.Versions, *e.v)
		case e.m != nil:
			out.DeleteMarkers = append(out.DeleteMarkers, *e.m)
		default:
			out.CommonPrefixes = append(out.CommonPrefixes, types.CommonPrefix{Prefix: aws.String(e.name)})
		}
	}
	return out, nil
}
