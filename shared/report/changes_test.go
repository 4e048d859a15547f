package report

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

func TestFolderOf(t *testing.T) {
	for _, tc := range []struct{ prefix, key, want string }{
		{"", "invoices/2026/a.pdf", "invoices/"},
		{"", "a.txt", ""},
		{"data/", "data/x/y.csv", "data/x/"},
		{"data/", "data/y.csv", "data/"},
		{"", "é/ü.txt", "é/"},
	} {
		if got := FolderOf(tc.prefix, tc.key); got != tc.want {
			t.Errorf("FolderOf(%q, %q) = %q, want %q", tc.prefix, tc.key, got, tc.want)
		}
	}
}

// TestTopChanges: keys in order, across a cursor's JSON round trip; the top list stays at
// DefaultTopChanges however many folders change.
func TestTopChanges(t *testing.T) {
	var tc TopChanges
	add := func(folder, kind string, n int) {
		for range n {
			tc.Add(folder, kind)
		}
	}
	add("a/", "new", 3)
	add("b/", "changed", 10)
	add("b/", "deleted", 2)
	for i := range 100 {
		add(fmt.Sprintf("c%03d/", i), "new", 1)
	}
	add("d/", "new", 7)
	// The cursor travels between invocations as JSON.
	var back TopChanges
	roundTrip(t, tc, &back)
	tc = back
	add("d/", "changed", 1) // the same folder, in the next invocation
	add("e/", "deleted", 5)
	want := []FolderChanges{{Folder: "b/", Changed: 10, Deleted: 2}, {Folder: "d/", New: 7, Changed: 1}, {Folder: "e/", Deleted: 5}, {Folder: "a/", New: 3}, {Folder: "c000/", New: 1}}
	if got := tc.Result(); !reflect.DeepEqual(got, want) {
		t.Errorf("top %+v\nwant %+v", got, want)
	}
	if len(tc.Top) > DefaultTopChanges {
		t.Errorf("the top list holds %d folders", len(tc.Top))
	}
	if got := (TopChanges{}).Result(); len(got) != 0 {
		t.Errorf("no changes: %+v", got)
	}
}

func roundTrip(t *testing.T, in any, out any) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}

func TestTotalsAdd(t *testing.T) {
	var a, b TopChanges
	for range 3 {
		a.Add("a/", "new")
	}
	a.Add("m/", "changed")
	b.Add("m/", "deleted") // the folder straddles the boundary
	b.Add("z/", "new")
	x := Totals{Listed: 3, New: 3, Changed: 1, ExcludedByRule: map[string]int64{"r": 1}, Changes: a, Batches: 2, Invocations: 1}
	x.Add(Totals{Listed: 1, New: 1, ToDelete: 1, ExcludedByRule: map[string]int64{"r": 2, "s": 1}, Changes: b, Batches: 1, Invocations: 2})
	if x.Listed != 4 || x.New != 4 || x.Changed != 1 || x.ToDelete != 1 || x.Batches != 3 || x.Invocations != 3 ||
		x.ExcludedByRule["r"] != 3 || x.ExcludedByRule["s"] != 1 {
		t.Errorf("sum %+v", x)
	}
	want := []FolderChanges{{Folder: "a/", New: 3}, {Folder: "m/", Changed: 1, Deleted: 1}, {Folder: "z/", New: 1}}
	if got := x.Changes.Result(); !reflect.DeepEqual(got, want) {
		t.Errorf("changes %+v, want %+v", got, want)
	}
}
