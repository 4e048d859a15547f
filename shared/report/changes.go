package report

import (
	"slices"
	"strings"
)

// DefaultTopChanges is how many folders with the most change a report names.
const DefaultTopChanges = 5

// FolderChanges is how many keys of one folder a run found new, changed or deleted.
type FolderChanges struct {
	Folder  string `json:"folder"` // the key's first folder below the run's prefix ("" for keys at that level)
	New     int64  `json:"new"`
	Changed int64  `json:"changed"`
	Deleted int64  `json:"deleted"`
}

// Total is the folder's changes.
func (f FolderChanges) Total() int64 { return f.New + f.Changed + f.Deleted }

// TopChanges keeps the DefaultTopChanges folders with the most changes while the lister goes
// through the keys in order. Keys arrive sorted, so a folder's keys arrive together: only the
// folder being counted (Current) and the top list are kept, whatever the number of folders; they
// travel in the lister's cursor between invocations.
type TopChanges struct {
	Top     []FolderChanges `json:"top,omitempty"`
	Current *FolderChanges  `json:"current,omitempty"`
}

// FolderOf is key's first folder below prefix: "invoices/" for "invoices/2026/a.pdf", "" for a
// key with no folder.
func FolderOf(prefix, key string) string {
	rest := strings.TrimPrefix(key, prefix)
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return prefix + rest[:i+1]
	}
	return prefix
}

// Add counts one changed key (kind "new", "changed" or "deleted") of folder.
func (t *TopChanges) Add(folder, kind string) {
	if t.Current == nil || t.Current.Folder != folder {
		t.flush()
		t.Current = &FolderChanges{Folder: folder}
	}
	switch kind {
	case "new":
		t.Current.New++
	case "changed":
		t.Current.Changed++
	default:
		t.Current.Deleted++
	}
}

// flush moves the folder being counted into the top list.
func (t *TopChanges) flush() {
	if t.Current == nil {
		return
	}
	t.Top = append(t.Top, *t.Current)
	t.Current = nil
	slices.SortStableFunc(t.Top, func(a, b FolderChanges) int {
		if d := b.Total() - a.Total(); d != 0 {
			if d > 0 {
				return 1
			}
			return -1
		}
		return strings.Compare(a.Folder, b.Folder)
	})
	if len(t.Top) > DefaultTopChanges {
		t.Top = t.Top[:DefaultTopChanges]
	}
}

// Result is the folders with the most changes, most first.
func (t TopChanges) Result() []FolderChanges {
	t.Top = slices.Clone(t.Top)
	if t.Current != nil {
		c := *t.Current
		t.Current = &c
	}
	t.flush()
	return t.Top
}

// Merge adds the changes of other, counted over keys that all come after t's (the next
// key-space range), to t. A folder both count (one that straddles the ranges' boundary) is
// summed; a folder that one of them had already dropped from its top list is counted only by
// the other, so near a boundary the merged counts may be low, never high.
func (t *TopChanges) Merge(other TopChanges) {
	other.Top = slices.Clone(other.Top)
	other.flush()
	for _, f := range other.Top {
		if t.Current != nil && t.Current.Folder == f.Folder {
			t.Current.New += f.New
			t.Current.Changed += f.Changed
			t.Current.Deleted += f.Deleted
			continue
		}
		i := slices.IndexFunc(t.Top, func(g FolderChanges) bool { return g.Folder == f.Folder })
		if i >= 0 {
			t.Top[i].New += f.New
			t.Top[i].Changed += f.Changed
			t.Top[i].Deleted += f.Deleted
			continue
		}
		t.flush()
		t.Current = &f
	}
	t.flush()
}
