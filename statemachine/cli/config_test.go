package cli

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bucketvault/bucketvault/shared/fault"
)

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := write("config.json", `{"source":"file-src","backup":"file-bak","run":"file-run","stack":"S"}`)
	tests := []struct {
		name    string
		path    string
		env     map[string]string
		flags   Config
		want    Config
		wantErr string
	}{
		{name: "file", path: file, want: Config{Source: "file-src", Backup: "file-bak", Run: "file-run", Stack: "S"}},
		{name: "environment over file", path: file, env: map[string]string{"SOURCE_BUCKET": "env-src", "RESTORE_TARGETS": "a,b"},
			want: Config{Source: "env-src", Backup: "file-bak", Run: "file-run", Stack: "S", RestoreTargets: []string{"a", "b"}}},
		{name: "flags over environment", path: file, env: map[string]string{"SOURCE_BUCKET": "env-src"}, flags: Config{Source: "flag-src", Endpoint: "http://x"},
			want: Config{Source: "flag-src", Backup: "file-bak", Run: "file-run", Stack: "S", Endpoint: "http://x"}},
		{name: "no file", path: filepath.Join(dir, "none.json"), env: map[string]string{"RUN_BUCKET": "r"}, want: Config{Run: "r"}},
		{name: "empty file", path: write("empty.json", "\n"), want: Config{}},
		{name: "unknown field", path: write("bad.json", `{"sourceBucket":"x"}`), wantErr: `unknown field "sourceBucket"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolve(tt.path, func(k string) string { return tt.env[k] }, tt.flags)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got.RestoreTargets, ",") != strings.Join(tt.want.RestoreTargets, ",") {
				t.Fatalf("restore targets %q, want %q", got.RestoreTargets, tt.want.RestoreTargets)
			}
			got.RestoreTargets, tt.want.RestoreTargets = nil, nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("config %+v, want %+v", got, tt.want)
			}
		})
	}
}

// A missing setting is named with every way to set it.
func TestNeed(t *testing.T) {
	err := Config{Backup: "b"}.need("/home/u/.config/bucketvault/config.json", "source", "backup", "run")
	want := `no source bucket (--source, SOURCE_BUCKET or "source" in /home/u/.config/bucketvault/config.json), no run bucket (--run, RUN_BUCKET or "run" in /home/u/.config/bucketvault/config.json)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want it to contain %s", err, want)
	}
	if err := (Config{Source: "s", Backup: "b", Run: "r"}).need("f", "source", "backup", "run"); err != nil {
		t.Fatal(err)
	}
}

// A directory bucket as the source or the backup is refused, naming which and why; the run bucket
// is not merged with anything and is not checked.
func TestNeedRefusesDirectoryBuckets(t *testing.T) {
	const dir = "data--usw2-az1--x-s3"
	tests := []struct {
		name  string
		cfg   Config
		names []string
		want  string // "" for no error
	}{
		{"source", Config{Source: dir, Backup: "b", Run: "r"}, []string{"source", "backup", "run"}, `source bucket "data--usw2-az1--x-s3" is an S3 Express One Zone directory bucket`},
		{"backup", Config{Source: "s", Backup: dir, Run: "r"}, []string{"backup", "run"}, `backup bucket "data--usw2-az1--x-s3" is an S3 Express One Zone directory bucket`},
		{"not asked for", Config{Source: dir, Backup: "b", Run: "r"}, []string{"backup", "run"}, ""},
		{"run bucket", Config{Source: "s", Backup: "b", Run: dir}, []string{"run"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.need("f", tt.names...)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ub *fault.UnsupportedBucket
			if !errors.As(err, &ub) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want UnsupportedBucket containing %s", err, tt.want)
			}
		})
	}
}
