package destination

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/fault"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
		want              int
	}{
		{name: "empty", in: "  "},
		{name: "one of the same provider", in: `[{"name":"dr","bucket":"b-dr","region":"eu-west-1"}]`, want: 1},
		{name: "another provider", in: `[{"name":"offsite","bucket":"b","endpoint":"https://s3.example.com","credentials":"secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:x"}]`, want: 1},
		{name: "same bucket at another provider", in: `[{"name":"a","bucket":"src","endpoint":"https://s3.example.com"}]`, want: 1},
		{name: "loopback http", in: `[{"name":"a","bucket":"b","endpoint":"http://127.0.0.1:9000","credentials":"env:DR"}]`, want: 1},
		{name: "not an array", in: `{"name":"dr"}`, wantErr: "is not a JSON array"},
		{name: "trailing text", in: `[] []`, wantErr: "text after"},
		{name: "too many", in: `[{"name":"a","bucket":"aaa"},{"name":"b","bucket":"bbb"},{"name":"c","bucket":"ccc"},{"name":"d","bucket":"ddd"}]`, wantErr: "at most 3"},
		{name: "bad name", in: `[{"name":"DR","bucket":"bbb"}]`, wantErr: `name "DR" must be`},
		{name: "primary", in: `[{"name":"primary","bucket":"bbb"}]`, wantErr: `"primary" is taken`},
		{name: "duplicate name", in: `[{"name":"a","bucket":"bbb"},{"name":"a","bucket":"ccc"}]`, wantErr: `"a" is taken`},
		{name: "no bucket", in: `[{"name":"a"}]`, wantErr: "has no bucket"},
		{name: "a bucket name S3 refuses", in: `[{"name":"a","bucket":"dr"}]`, wantErr: `bucket "dr" is not an S3 bucket name`},
		{name: "a bucket name with a slash", in: `[{"name":"a","bucket":"b/c","endpoint":"https://s3.example.com"}]`, wantErr: `is not a bucket name`},
		{name: "the source bucket", in: `[{"name":"a","bucket":"src"}]`, wantErr: `bucket "src" is already`},
		{name: "two destinations, one bucket", in: `[{"name":"a","bucket":"bbb"},{"name":"c","bucket":"bbb"}]`, wantErr: `bucket "bbb" is already`},
		{name: "endpoint with a path", in: `[{"name":"a","bucket":"b","endpoint":"https://s3.example.com/x"}]`, wantErr: "with no path"},
		{name: "endpoint with user info", in: `[{"name":"a","bucket":"b","endpoint":"https://k:s@s3.example.com"}]`, wantErr: "with no path"},
		{name: "plain http", in: `[{"name":"a","bucket":"b","endpoint":"http://s3.example.com"}]`, wantErr: "not loopback"},
		{name: "bad credentials", in: `[{"name":"a","bucket":"b","endpoint":"https://s3.example.com","credentials":"AKIA:secret"}]`, wantErr: "credentials"},
		{name: "unknown field", in: `[{"name":"a","bucket":"bbb","kmsKey":"x"}]`, wantErr: `unknown field "kmsKey"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := Parse(tt.in, "src", "bak", "run")
			if tt.wantErr != "" {
				var inv *fault.InvalidInput
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &inv) {
					t.Fatalf("Parse = %+v, %v; want InvalidInput %q", ds, err, tt.wantErr)
				}
				return
			}
			if err != nil || len(ds) != tt.want {
				t.Fatalf("Parse = %+v, %v; want %d", ds, err, tt.want)
			}
		})
	}
}

type secrets map[string]string

func (s secrets) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	v, ok := s[aws.ToString(in.SecretId)]
	if !ok {
		return nil, errors.New("AccessDeniedException")
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(v)}, nil
}

// Open gives a same-provider destination in the function's Region the function's own client,
// and every other one a client with its endpoint, Region and credentials.
func TestOpen(t *testing.T) {
	ctx := context.Background()
	primary, err := s3client.New(ctx, s3client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	env := envconf.Map(map[string]string{
		Variable: `[{"name":"same","bucket":"bb1"},{"name":"eu","bucket":"bb2","region":"eu-west-1"},` +
			`{"name":"far","bucket":"b3","endpoint":"http://127.0.0.1:9","credentials":"env:FAR"}]`,
		"FAR_ACCESS_KEY_ID": "far-id", "FAR_SECRET_ACCESS_KEY": "far-secret",
	})
	ds, err := FromEnv(env, "src")
	if err != nil {
		t.Fatal(err)
	}
	clients, err := Open(ctx, ds, primary, s3client.Options{}, secrets{})
	if err != nil {
		t.Fatal(err)
	}
	if clients["same"] != primary || clients["eu"] == primary || clients["far"] == primary {
		t.Fatalf("clients %v: want the primary for same only", clients)
	}
	if r := clients["eu"].Options().Region; r != "eu-west-1" {
		t.Errorf("eu's Region %q", r)
	}
	far := clients["far"].Options()
	if aws.ToString(far.BaseEndpoint) != "http://127.0.0.1:9" || !far.UsePathStyle {
		t.Errorf("far's endpoint %q path style %v", aws.ToString(far.BaseEndpoint), far.UsePathStyle)
	}
	c, err := far.Credentials.Retrieve(ctx)
	if err != nil || c.AccessKeyID != "far-id" || c.SecretAccessKey != "far-secret" {
		t.Errorf("far's credentials %+v, %v", c, err)
	}

	// Credentials from Secrets Manager; an unreadable or malformed secret fails naming the destination.
	for _, tt := range []struct{ secret, wantErr string }{
		{secret: `{"accessKeyId":"sm-id","secretAccessKey":"sm-secret"}`},
		{secret: `not json`, wantErr: `destination "sm"`},
		{wantErr: "AccessDeniedException"},
	} {
		ds, err := Parse(`[{"name":"sm","bucket":"b","endpoint":"https://s3.example.com","credentials":"secretsmanager:arn:s"}]`)
		if err != nil {
			t.Fatal(err)
		}
		sm := secrets{}
		if tt.secret != "" {
			sm["arn:s"] = tt.secret
		}
		clients, err := Open(ctx, ds, primary, s3client.Options{}, sm)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("secret %q: %v, want %q", tt.secret, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		c, err := clients["sm"].Options().Credentials.Retrieve(ctx)
		if err != nil || c.AccessKeyID != "sm-id" {
			t.Errorf("sm's credentials %+v, %v", c, err)
		}
	}
}
