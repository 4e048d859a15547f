package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/bucketvault/bucketvault/shared/bucketcheck"
	"github.com/bucketvault/bucketvault/shared/strictjson"
)

// Config is what a person keeps so that nobody exports five variables per call: the buckets, the
// S3 endpoint and, for AWS, the stack. It comes from a JSON file (ConfigPath), then the
// environment the functions read (SOURCE_BUCKET, BACKUP_BUCKET, RUN_BUCKET, RESTORE_TARGETS,
// AWS_ENDPOINT_URL_S3, BUCKETVAULT_STACK), then flags; each later one wins.
type Config struct {
	Source         string   `json:"source,omitempty"`
	Backup         string   `json:"backup,omitempty"`
	Run            string   `json:"run,omitempty"`
	Endpoint       string   `json:"endpoint,omitempty"`
	Stack          string   `json:"stack,omitempty"`
	RestoreTargets []string `json:"restoreTargets,omitempty"`
}

// ConfigPath is the config file: $BUCKETVAULT_CONFIG, else bucketvault/config.json under the
// user's configuration directory ($XDG_CONFIG_HOME or ~/.config on Linux).
func ConfigPath(getenv func(string) string) string {
	if p := getenv("BUCKETVAULT_CONFIG"); p != "" {
		return p
	}
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "bucketvault", "config.json")
}

// loadConfig reads the file at path (a missing file is an empty Config), then the environment.
func loadConfig(path string, getenv func(string) string) (Config, error) {
	var c Config
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		case len(strings.TrimSpace(string(data))) == 0: // an empty file configures nothing
		default:
			if err := strictjson.Unmarshal(data, &c); err != nil {
				return Config{}, fmt.Errorf("config %s: %v (fields: source, backup, run, endpoint, stack, restoreTargets)", path, err)
			}
		}
	}
	set := func(dst *string, name string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	set(&c.Source, "SOURCE_BUCKET")
	set(&c.Backup, "BACKUP_BUCKET")
	set(&c.Run, "RUN_BUCKET")
	set(&c.Endpoint, "AWS_ENDPOINT_URL_S3")
	set(&c.Stack, "BUCKETVAULT_STACK")
	if v := getenv("RESTORE_TARGETS"); v != "" {
		c.RestoreTargets = strings.Split(v, ",")
	}
	return c, nil
}

// resolve is the file's configuration, then the environment's, then the flags' (non-empty ones).
func resolve(path string, getenv func(string) string, flags Config) (Config, error) {
	cfg, err := loadConfig(path, getenv)
	if err != nil {
		return Config{}, err
	}
	over := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	over(&cfg.Source, flags.Source)
	over(&cfg.Backup, flags.Backup)
	over(&cfg.Run, flags.Run)
	over(&cfg.Endpoint, flags.Endpoint)
	over(&cfg.Stack, flags.Stack)
	return cfg, nil
}

// need returns an error naming how to set each of the named settings that is empty, or, when all
// are set, the first source or backup bucket bucketvault does not support (bucketcheck: an S3
// Express One Zone directory bucket).
func (c Config) need(path string, names ...string) error {
	var missing []string
	var unsupported error
	for _, n := range names {
		v, flag, env := "", "", ""
		switch n {
		case "source":
			v, flag, env = c.Source, "--source", "SOURCE_BUCKET"
		case "backup":
			v, flag, env = c.Backup, "--backup", "BACKUP_BUCKET"
		case "run":
			v, flag, env = c.Run, "--run", "RUN_BUCKET"
		}
		if v == "" {
			missing = append(missing, fmt.Sprintf("%s bucket (%s, %s or %q in %s)", n, flag, env, n, path))
		} else if n == "source" || n == "backup" {
			if err := bucketcheck.Supported(n, v); err != nil && unsupported == nil {
				unsupported = err
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no %s: set it with a flag, the environment or the config file", strings.Join(missing, ", no "))
	}
	return unsupported
}
