// Package destination reads a backup's further destinations — buckets beside the backup bucket
// (the primary destination) that every run also writes, each keeping its own versioned history:
// in another Region or account of the same provider, or on another S3-compatible provider with its
// own endpoint and credentials — and opens an S3 client for each.
//
// The setting is DESTINATIONS, a JSON array of Destination. A destination of the same provider
// (no endpoint, no credentials) is written by server-side copies with the function's own
// credentials (on AWS its role, which the destination's bucket policy or the same account
// allows); one of another provider by streamed copies (GET from the source, PUT to it).
package destination

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

// Variable names the setting.
const Variable = "DESTINATIONS"

// Primary is the name of the backup bucket (BACKUP_BUCKET) among the destinations: a restore
// "from" it is a restore from the backup bucket.
const Primary = "primary"

// MaxFurther is how many destinations a deployment may have besides the primary.
const MaxFurther = 3

// Credentials sources.
const (
	EnvCredentials    = "env:"            // env:PREFIX: PREFIX_ACCESS_KEY_ID, PREFIX_SECRET_ACCESS_KEY (and PREFIX_SESSION_TOKEN)
	SecretCredentials = "secretsmanager:" // secretsmanager:ARN: a secret whose string is {"accessKeyId": …, "secretAccessKey": …}
)

// Destination is one further destination.
type Destination struct {
	// Name identifies the destination in batch files, reports and restores (--from NAME):
	// lower-case letters, digits and hyphens, at most 32, not "primary".
	Name string `json:"name"`
	// Bucket is the destination's bucket, versioned.
	Bucket string `json:"bucket"`
	// Region is the bucket's Region; empty means the function's.
	Region string `json:"region,omitempty"`
	// Endpoint is another provider's S3 endpoint (https://…, or http:// on loopback); empty
	// means the function's own provider.
	Endpoint string `json:"endpoint,omitempty"`
	// Credentials names where the credentials for another provider are (EnvCredentials or
	// SecretCredentials); empty means the function's own.
	Credentials string `json:"credentials,omitempty"`

	static *aws.Credentials // resolved from the environment (env:)
}

// SameProvider reports whether d is written with server-side copies from the source: it is
// reached with the function's own endpoint and credentials.
func (d Destination) SameProvider() bool { return d.Endpoint == "" && d.Credentials == "" }

// String names d for messages: its name and its bucket.
func (d Destination) String() string {
	where := d.Bucket
	if d.Endpoint != "" {
		where = d.Endpoint + "/" + d.Bucket
	}
	return fmt.Sprintf("destination %q (%s)", d.Name, where)
}

var (
	namePattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	bucketPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
)

// Parse reads the DESTINATIONS setting (empty: none), strictly: unknown fields, a bad name, a
// duplicate, a bucket that is one of reserved (the source, backup and run buckets on the
// function's own provider) or another destination's, a malformed endpoint or credentials source,
// are InvalidInput errors.
func Parse(s string, reserved ...string) ([]Destination, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	var ds []Destination
	if err := dec.Decode(&ds); err != nil {
		return nil, invalid("is not a JSON array of destinations: %v", err)
	}
	if dec.More() {
		return nil, invalid("has text after its JSON array")
	}
	if len(ds) > MaxFurther {
		return nil, invalid("names %d destinations; at most %d besides the backup bucket", len(ds), MaxFurther)
	}
	names := map[string]bool{Primary: true}
	sameProvider := map[string]bool{}
	for _, b := range reserved {
		if b != "" {
			sameProvider[b] = true
		}
	}
	for i, d := range ds {
		switch {
		case !namePattern.MatchString(d.Name):
			return nil, invalid("destination %d: name %q must be 1 to 32 lower-case letters, digits and hyphens", i, d.Name)
		case names[d.Name]:
			return nil, invalid("destination %d: name %q is taken (%q is the backup bucket's)", i, d.Name, Primary)
		case d.Bucket == "":
			return nil, invalid("destination %q has no bucket", d.Name)
		case d.Endpoint == "" && !bucketPattern.MatchString(d.Bucket):
			return nil, invalid("destination %q: bucket %q is not an S3 bucket name (3 to 63 lower-case letters, digits, dots and hyphens, beginning and ending with a letter or digit)", d.Name, d.Bucket)
		case strings.ContainsAny(d.Bucket, "/ "):
			return nil, invalid("destination %q: bucket %q is not a bucket name", d.Name, d.Bucket)
		case d.SameProvider() && sameProvider[d.Bucket]:
			return nil, invalid("destination %q: bucket %q is already the source, the backup, the run bucket or another destination", d.Name, d.Bucket)
		}
		names[d.Name] = true
		if d.SameProvider() {
			sameProvider[d.Bucket] = true
		}
		if d.Endpoint != "" {
			u, err := url.Parse(d.Endpoint)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.User != nil {
				return nil, invalid("destination %q: endpoint %q must be an https:// (or loopback http://) URL with no path", d.Name, d.Endpoint)
			}
			if u.Scheme == "http" && !loopback(u.Hostname()) {
				return nil, invalid("destination %q: endpoint %q is plain http to a host that is not loopback; use https", d.Name, d.Endpoint)
			}
		}
		switch {
		case d.Credentials == "":
		case strings.HasPrefix(d.Credentials, EnvCredentials) && envPrefix.MatchString(strings.TrimPrefix(d.Credentials, EnvCredentials)):
		case strings.HasPrefix(d.Credentials, SecretCredentials) && len(d.Credentials) > len(SecretCredentials):
		default:
			return nil, invalid("destination %q: credentials %q must be %sPREFIX or %sSECRET-ARN", d.Name, d.Credentials, EnvCredentials, SecretCredentials)
		}
	}
	return ds, nil
}

var envPrefix = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

func loopback(host string) bool {
	return host == "localhost" || host == "::1" || strings.HasPrefix(host, "127.")
}

func invalid(format string, args ...any) error {
	return &fault.InvalidInput{Msg: Variable + " " + fmt.Sprintf(format, args...)}
}

// FromEnv reads DESTINATIONS from lookup and resolves the credentials it finds there (env:),
// so that a function's configuration holds them; Secrets Manager's are read by Open.
func FromEnv(lookup envconf.Lookup, reserved ...string) ([]Destination, error) {
	s, _ := lookup(Variable)
	ds, err := Parse(s, reserved...)
	if err != nil {
		return nil, err
	}
	for i := range ds {
		prefix, ok := strings.CutPrefix(ds[i].Credentials, EnvCredentials)
		if !ok {
			continue
		}
		id, _ := lookup(prefix + "_ACCESS_KEY_ID")
		secret, _ := lookup(prefix + "_SECRET_ACCESS_KEY")
		token, _ := lookup(prefix + "_SESSION_TOKEN")
		if id == "" || secret == "" {
			return nil, invalid("destination %q: credentials %s: %s_ACCESS_KEY_ID and %s_SECRET_ACCESS_KEY must be set", ds[i].Name, ds[i].Credentials, prefix, prefix)
		}
		ds[i].static = &aws.Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: token, Source: "bucketvault " + ds[i].Credentials}
	}
	return ds, nil
}

// CredentialVariables are the environment variables the destinations' env: credentials name.
func CredentialVariables(ds []Destination) []string {
	var out []string
	for _, d := range ds {
		if prefix, ok := strings.CutPrefix(d.Credentials, EnvCredentials); ok {
			out = append(out, prefix+"_ACCESS_KEY_ID", prefix+"_SECRET_ACCESS_KEY", prefix+"_SESSION_TOKEN")
		}
	}
	return out
}

// Find returns the destination named name.
func Find(ds []Destination, name string) (Destination, bool) {
	for _, d := range ds {
		if d.Name == name {
			return d, true
		}
	}
	return Destination{}, false
}

// Secrets is what Open needs of Secrets Manager.
type Secrets interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Open returns an S3 client per destination, by name: for a destination of the same provider in
// no other Region, primary itself (one pacer for one provider); otherwise a client of its own
// built with opts (its endpoint, Region and credentials set). sm reads SecretCredentials; nil
// means a client from the default AWS configuration, made only when one is needed.
func Open(ctx context.Context, ds []Destination, primary *s3.Client, opts s3client.Options, sm Secrets) (map[string]*s3.Client, error) {
	out := map[string]*s3.Client{}
	for _, d := range ds {
		if d.SameProvider() && d.Region == "" {
			out[d.Name] = primary
			continue
		}
		o := opts
		o.Pacer = nil
		o.Endpoint, o.Region = d.Endpoint, d.Region
		switch {
		case d.static != nil:
			o.Credentials = credentials.StaticCredentialsProvider{Value: *d.static}
		case strings.HasPrefix(d.Credentials, SecretCredentials):
			if sm == nil {
				cfg, err := config.LoadDefaultConfig(ctx)
				if err != nil {
					return nil, fmt.Errorf("load AWS config for Secrets Manager: %w", err)
				}
				sm = secretsmanager.NewFromConfig(cfg)
			}
			c, err := secretCredentials(ctx, sm, d)
			if err != nil {
				return nil, err
			}
			o.Credentials = credentials.StaticCredentialsProvider{Value: c}
		case d.Credentials != "":
			return nil, invalid("destination %q: credentials %s were not resolved (use FromEnv)", d.Name, d.Credentials)
		}
		c, err := s3client.New(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", d, err)
		}
		out[d.Name] = c
	}
	return out, nil
}

func secretCredentials(ctx context.Context, sm Secrets, d Destination) (aws.Credentials, error) {
	arn := strings.TrimPrefix(d.Credentials, SecretCredentials)
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return aws.Credentials{}, fmt.Errorf("%s: read its credentials' secret: %w", d, err)
	}
	var v struct {
		AccessKeyID     string `json:"accessKeyId"`
		SecretAccessKey string `json:"secretAccessKey"`
		SessionToken    string `json:"sessionToken"`
	}
	if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &v); err != nil || v.AccessKeyID == "" || v.SecretAccessKey == "" {
		return aws.Credentials{}, fmt.Errorf("%s: its secret must be JSON {\"accessKeyId\": …, \"secretAccessKey\": …}", d)
	}
	return aws.Credentials{AccessKeyID: v.AccessKeyID, SecretAccessKey: v.SecretAccessKey, SessionToken: v.SessionToken, Source: "bucketvault secret"}, nil
}

// OpenAs is Open for a function whose client type C is an interface *s3.Client satisfies:
// primary is the function's client (a fake in tests, which then serves the same-provider
// destinations in its Region), and each other destination gets a client of its own.
func OpenAs[C any](ctx context.Context, ds []Destination, primary C, opts s3client.Options) (map[string]C, error) {
	own, _ := any(primary).(*s3.Client)
	clients, err := Open(ctx, ds, own, opts, nil)
	if err != nil {
		return nil, err
	}
	out := make(map[string]C, len(ds))
	for _, d := range ds {
		c, ok := any(clients[d.Name]).(C)
		if clients[d.Name] == nil || !ok {
			out[d.Name] = primary
			continue
		}
		out[d.Name] = c
	}
	return out, nil
}
