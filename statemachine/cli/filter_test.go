package cli

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/filter"
	"github.com/bucketvault/bucketvault/shared/report"
)

// --include, --exclude and --delete-excluded build the execution's "filters", each rule one
// condition or a JSON array of them; a malformed rule is an InvalidInput naming it.
func TestFiltersInput(t *testing.T) {
	tests := []struct {
		name             string
		include, exclude []string
		deleteExcluded   bool
		want, wantErr    string
	}{
		{name: "include and exclude", include: []string{"prefix:data/", "glob:**/*.parquet"}, exclude: []string{"tag:backup=false"},
			want: `{"include":["prefix:data/","glob:**/*.parquet"],"exclude":["tag:backup=false"]}`},
		{name: "an AND rule as a JSON array", exclude: []string{`["glob:logs/**", "age>30d"]`}, deleteExcluded: true,
			want: `{"exclude":[["glob:logs/**","age>30d"]],"deleteExcluded":true}`},
		{name: "malformed rule", exclude: []string{"size>10MB"}, wantErr: `filters: exclude[0] "size>10MB": size "10MB" is not a byte count`},
		{name: "malformed array", include: []string{`["prefix:a/"`}, wantErr: `--include ["prefix:a/": unexpected end of JSON input`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := filtersInput(tt.include, tt.exclude, tt.deleteExcluded)
			if tt.wantErr != "" {
				var invalid *fault.InvalidInput
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.HasPrefix(tt.wantErr, "filters:") && !errors.As(err, &invalid) {
					t.Fatalf("err = %T %v, want %q", err, err, tt.wantErr)
				}
				return
			}
			want, perr := filter.Parse([]byte(tt.want))
			if err != nil || perr != nil || !reflect.DeepEqual(f.Config(), want.Config()) {
				t.Fatalf("filters %+v, %v; want %s", f.Config(), err, tt.want)
			}
		})
	}
}

// The summary shows what the filters excluded, by rule, only when they excluded something, and
// how a backup was listed (in one sequence or in key-space ranges).
func TestSummaryShowsExcluded(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    report.Report
		want []string
		not  []string
		kind string // "backup" unless set
	}{
		{"nothing excluded", report.Report{Listed: 3, New: 3, ExcludedByRule: map[string]int64{}}, []string{"listed in  one sequence\n"}, []string{"excluded"}, ""},
		{"listed in ranges", report.Report{Listed: 300000, ListRanges: 33}, []string{"listed in  33 key-space ranges\n"}, nil, ""},
		{"a restore", report.Report{Listed: 3}, nil, []string{"listed in"}, "restore"},
		{"excluded by two rules", report.Report{Listed: 5, New: 2, Excluded: 3, ExcludedDeletions: 1, TagReads: 4,
			ExcludedByRule: map[string]int64{"glob:**/*.tmp": 2, "tag:backup=false": 1}},
			[]string{"excluded      3", "gone, left alone  1", "tag reads  4", "excluded by glob:**/*.tmp: 2\n", "excluded by tag:backup=false: 1\n"}, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			a := &app{out: &out}
			kind := tt.kind
			if kind == "" {
				kind = "backup"
			}
			a.printSummary(kind, "b-1", "SUCCEEDED", "", "", &tt.r, time.Second)
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("summary lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.not {
				if strings.Contains(out.String(), w) {
					t.Errorf("summary shows %q:\n%s", w, out.String())
				}
			}
		})
	}
}
