package change

import (
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	obj := func(size int64, etag string, at time.Time) *Object {
		return &Object{Key: "k", Size: size, ETag: etag, LastModified: at}
	}
	tests := []struct {
		name     string
		src, bak *Object
		want     Class
	}{
		{"only in source", obj(1, `"a"`, t0), nil, New},
		{"only in backup", nil, obj(1, `"a"`, t0), Deleted},
		{"same etag and size", obj(5, `"abc"`, t0), obj(5, `"abc"`, t0.Add(time.Hour)), Unchanged},
		{"quotes do not matter", obj(5, `abc`, t0), obj(5, `"abc"`, t0), Unchanged},
		{"size differs", obj(5, `"abc"`, t0), obj(6, `"abc"`, t0), Changed},
		{"etag differs", obj(5, `"abc"`, t0), obj(5, `"abd"`, t0.Add(time.Hour)), Changed},
		{"multipart source, same multipart etag", obj(5, `"abc-3"`, t0), obj(5, `"abc-3"`, t0), Unchanged},
		{"multipart source copied as single part", obj(5, `"abc-3"`, t0), obj(5, `"def"`, t0.Add(time.Hour)), Changed},
		{"single-part source copied in parts, after it was written", obj(5, `"abc"`, t0), obj(5, `"def-2"`, t0.Add(time.Second)), Unchanged},
		{"single-part source copied in parts, same second", obj(5, `"abc"`, t0), obj(5, `"def-2"`, t0), Changed},
		{"single-part source rewritten after the parted copy", obj(5, `"abc"`, t0.Add(time.Hour)), obj(5, `"def-2"`, t0), Changed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.src, tt.bak); got != tt.want {
				t.Errorf("Classify = %s, want %s", got, tt.want)
			}
		})
	}
}

// Same proves equal content only by size and ETag; SameAsOwnCopy also accepts the backup's parted
// copy of a single-part source. A restore target is not the backup: a later multipart object of
// the same size there (a user's upload) is not proven to hold the version being restored.
func TestSame(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	obj := func(size int64, etag string, at time.Time) Object {
		return Object{Key: "k", Size: size, ETag: etag, LastModified: at}
	}
	tests := []struct {
		name          string
		a, b          Object
		same, ownCopy bool
	}{
		{"same size and etag", obj(5, `"abc"`, t0), obj(5, `"abc"`, t0.Add(time.Hour)), true, true},
		{"quotes do not matter", obj(5, `abc`, t0), obj(5, `"abc"`, t0), true, true},
		{"same multipart etag", obj(5, `"abc-2"`, t0), obj(5, `"abc-2"`, t0), true, true},
		{"size differs", obj(5, `"abc"`, t0), obj(6, `"abc"`, t0), false, false},
		{"etag differs", obj(5, `"abc"`, t0), obj(5, `"abd"`, t0), false, false},
		{"later multipart object of the same size", obj(5, `"abc"`, t0), obj(5, `"def-2"`, t0.Add(time.Second)), false, true},
		{"later multipart object of another size", obj(5, `"abc"`, t0), obj(6, `"def-2"`, t0.Add(time.Second)), false, false},
		{"multipart object of the same second", obj(5, `"abc"`, t0), obj(5, `"def-2"`, t0), false, false},
		{"multipart source, single-part other", obj(5, `"abc-2"`, t0), obj(5, `"def"`, t0.Add(time.Hour)), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Same(tt.a, tt.b); got != tt.same {
				t.Errorf("Same = %v, want %v", got, tt.same)
			}
			if got := SameAsOwnCopy(tt.a, tt.b); got != tt.ownCopy {
				t.Errorf("SameAsOwnCopy = %v, want %v", got, tt.ownCopy)
			}
		})
	}
}
