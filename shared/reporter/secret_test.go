package reporter

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/bucketvault/bucketvault/shared/envconf"
)

type fakeSecrets struct {
	value string
	err   error
	asked []string
}

func (f *fakeSecrets) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.asked = append(f.asked, aws.ToString(in.SecretId))
	if f.err != nil {
		return nil, f.err
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(f.value)}, nil
}

func TestWithSecretURLs(t *testing.T) {
	const arn = "arn:aws:secretsmanager:eu-west-1:1:secret:bv-notify"
	for _, tc := range []struct {
		name    string
		env     map[string]string
		sm      *fakeSecrets
		want    string
		asked   int
		wantErr bool
	}{
		{"no secret", map[string]string{"NOTIFY_URLS": "https://a.example/h"}, &fakeSecrets{value: "x"}, "https://a.example/h", 0, false},
		{"secret only", map[string]string{SecretURLsVariable: arn}, &fakeSecrets{value: " slack://t/c \n"}, "slack://t/c", 1, false},
		{"both", map[string]string{SecretURLsVariable: arn, "NOTIFY_URLS": "https://a.example/h"}, &fakeSecrets{value: "slack://t/c"}, "https://a.example/h,slack://t/c", 1, false},
		{"unreadable", map[string]string{SecretURLsVariable: arn, "NOTIFY_URLS": "https://a.example/h"}, &fakeSecrets{err: errors.New("AccessDeniedException")}, "https://a.example/h", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lookup, err := WithSecretURLs(context.Background(), tc.sm, envconf.Map(tc.env))
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v", err)
			}
			if got, _ := lookup("NOTIFY_URLS"); got != tc.want || len(tc.sm.asked) != tc.asked {
				t.Errorf("NOTIFY_URLS %q (secret read %d times), want %q", got, len(tc.sm.asked), tc.want)
			}
		})
	}
}
