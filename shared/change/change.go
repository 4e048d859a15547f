// Package change decides, from two listing entries, whether the backup already holds the source
// object's content, without reading either object.
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

// Same reports whether the backup object bak holds the content of the source object src.
//
// Sizes must match. Equal ETags mean equal content: bucketvault copies single-part objects with
// CopyObject (which keeps the MD5 ETag) and multipart objects part by part with the source's own
// part boundaries (which reproduces the multipart ETag). The one case where a faithful copy has a
// different ETag is a single-part source copied in parts because it is above the multipart
// threshold; then the backup's multipart version holds the source's content exactly when it was
// written strictly after the source was, since a single-part object's LastModified is the time
// it was written.
func Same(src, bak Object) bool {
	if src.Size != bak.Size {
		return false
	}
	if NormalizeETag(src.ETag) == NormalizeETag(bak.ETag) {
		return true
	}
	return !IsMultipart(src.ETag) && IsMultipart(bak.ETag) && bak.LastModified.After(src.LastModified)
}

// Classify compares the entries for one key; a nil side is absent.
func Classify(src, bak *Object) Class {
	switch {
	case src != nil && bak == nil:
		return New
	case src == nil && bak != nil:
		return Deleted
	case src != nil && Same(*src, *bak):
		return Unchanged
	default:
		return Changed
	}
}
