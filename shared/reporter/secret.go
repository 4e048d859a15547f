package reporter

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/bucketvault/bucketvault/shared/envconf"
)

// SecretURLsVariable names a Secrets Manager secret whose string holds more notification URLs
// (comma-separated, as NOTIFY_URLS): webhook and chat URLs carry their credentials, which do not
// belong in a function's environment, where anyone who may read its configuration sees them.
const SecretURLsVariable = "NOTIFY_URLS_SECRET_ARN"

// Secrets is what the reporter needs of Secrets Manager.
type Secrets interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

var _ Secrets = (*secretsmanager.Client)(nil)

// WithSecretURLs returns lookup with the URLs of the secret SecretURLsVariable names added to
// NOTIFY_URLS. Without the variable it returns lookup itself; when the secret cannot be read, it
// returns lookup and the error (which the report records: a notification never fails a run).
func WithSecretURLs(ctx context.Context, sm Secrets, lookup envconf.Lookup) (envconf.Lookup, error) {
	arn, ok := lookup(SecretURLsVariable)
	if arn = strings.TrimSpace(arn); !ok || arn == "" {
		return lookup, nil
	}
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return lookup, fmt.Errorf("%s: read the notification URLs' secret: %w", SecretURLsVariable, err)
	}
	secret := strings.TrimSpace(aws.ToString(out.SecretString))
	return func(name string) (string, bool) {
		v, ok := lookup(name)
		if name != "NOTIFY_URLS" || secret == "" {
			return v, ok
		}
		if strings.TrimSpace(v) == "" {
			return secret, true
		}
		return v + "," + secret, true
	}, nil
}
