// Package change decides, from two listing entries and without reading either object, whether
// one object holds another's content: strictly (Same) for any object, and with the backup
// bucket's own-copy rule (SameAsOwnCopy, Classify) for the lister.
package change

import (
	"strings"
	"time"
)

// Object is one entry of a ListObjectsV2 page, or of a HeadObject answer.
type Object struct {
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	ETag         string    `json:"etag"`
	LastModified time.Time `json:"lastModified"`
	// StorageClass is the listing's storage class (empty means STANDARD).
	StorageClass string `json:"storageClass,omitempty"`
}

// Class is what a run must do about one key.
type Class string

// The classes of a key, comparing the source with the backup's current version.
const (
	New       Class = "new"       // in the source only: copy
	Changed   Class = "changed"   // in both, content differs: copy (a new version)
	Unchanged Class = "unchanged" // in both, same content: nothing
	Deleted   Class = "deleted"   // in the backup only: mark deleted
)

// NormalizeETag strips the quotes S3 puts around ETags.
func NormalizeETag(etag string) string { return strings.Trim(etag, `"`) }

// IsMultipart reports whether an ETag is a multipart upload's ("<md5 of part md5s>-<parts>").
func IsMultipart(etag string) bool { return strings.Contains(NormalizeETag(etag), "-") }

// Same reports whether two objects provably hold the same content: the same size and the same
// ETag. It is the rule for any object bucketvault did not write itself (a restore target, a
// destination checked after a copy), where a differing ETag may mean differing content.
func Same(a, b Object) bool {
	return a.Size == b.Size && NormalizeETag(a.ETag) == NormalizeETag(b.ETag)
}

// SameAsOwnCopy reports whether the backup object bak, written by bucketvault's own copy of the
// source object src, holds src's content. It is only for comparing the source with the backup
// bucket (Classify); for any other object use Same.
//
// Sizes must match. Equal ETags mean equal content: bucketvault copies single-part objects with
// CopyObject (which keeps the MD5 ETag) and multipart objects part by part with the source's own
// part boundaries (which reproduces the multipart ETag). The one case where a faithful copy has a
// different ETag is a single-part source copied in parts because it is above the multipart
// threshold; then the backup's multipart version holds the source's content exactly when it was
// written strictly after the source was, since a single-part object's LastModified is the time
// it was written. Only bucketvault writes the backup bucket, so that multipart version is its
// copy; in any other bucket a later multipart object of the same size may be anything.
func SameAsOwnCopy(src, bak Object) bool {
	if Same(src, bak) {
		return true
	}
	return src.Size == bak.Size && !IsMultipart(src.ETag) && IsMultipart(bak.ETag) && bak.LastModified.After(src.LastModified)
}

// Classify compares the source's and the backup's entries for one key (a nil side is absent),
// with the backup-bucket rule SameAsOwnCopy.
func Classify(src, bak *Object) Class {
	switch {
	case src != nil && bak == nil:
		return New
	case src == nil && bak != nil:
		return Deleted
	case src != nil && SameAsOwnCopy(*src, *bak):
		return Unchanged
	default:
		return Changed
	}
}
