// Package consoleaws runs the restore console as a Lambda function behind an API Gateway HTTP
// API: people sign in through the stack's Cognito user pool (oidcauth), restores start as
// executions of the restore state machine (and run under its roles, not the console's), and
// downloads are short-lived presigned URLs (a Lambda response is at most 6 MB).
package consoleaws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/bucketvault/bucketvault/shared/awsrun"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/runlog"
	"github.com/bucketvault/bucketvault/statemachine/console"
	"github.com/bucketvault/bucketvault/statemachine/console/oidcauth"
)

// Defaults of the console on AWS.
const (
	DefaultURLLifetime = 5 * time.Minute // a download link works this long
)

// Config is the console function's configuration, from its environment.
type Config struct {
	Source, Backup, Run    string
	RestoreTargets         []string
	RestoreStateMachineArn string
	// URL is the console's address (the HTTP API's endpoint); Issuer, ClientID, RestoreGroup
	// and LogoutURL configure the sign-in (oidcauth.Config).
	URL, Issuer, ClientID, RestoreGroup, LogoutURL string
	// AllowExact offers exact rollback (ALLOW_EXACT_ROLLBACK, as the restore planner's).
	AllowExact bool
	// ClientSecret is for a provider whose client has one; the stack's Cognito client is
	// public (PKCE) and has none.
	ClientSecret string
}

// ConfigFromEnv reads SOURCE_BUCKET, BACKUP_BUCKET, RUN_BUCKET, RESTORE_STATE_MACHINE_ARN,
// CONSOLE_URL, OIDC_ISSUER, OIDC_CLIENT_ID (required), RESTORE_TARGETS (comma-separated),
// RESTORE_GROUP (oidcauth.DefaultRestoreGroup), ALLOW_EXACT_ROLLBACK (false), COGNITO_DOMAIN (the hosted sign-in's
// https://<prefix>.auth.<region>.amazoncognito.com: signing out ends its session too) and
// OIDC_CLIENT_SECRET.
func ConfigFromEnv(lookup envconf.Lookup) (Config, error) {
	r := envconf.NewReader(lookup)
	c := Config{
		Source: r.Required("SOURCE_BUCKET"), Backup: r.Required("BACKUP_BUCKET"), Run: r.Required("RUN_BUCKET"),
		RestoreTargets:         r.List("RESTORE_TARGETS"),
		RestoreStateMachineArn: r.Required("RESTORE_STATE_MACHINE_ARN"),
		URL:                    strings.TrimSuffix(r.Required("CONSOLE_URL"), "/"),
		Issuer:                 r.Required("OIDC_ISSUER"), ClientID: r.Required("OIDC_CLIENT_ID"),
		RestoreGroup: r.String("RESTORE_GROUP", oidcauth.DefaultRestoreGroup),
		ClientSecret: r.String("OIDC_CLIENT_SECRET", ""),
		AllowExact:   r.OneOf("ALLOW_EXACT_ROLLBACK", "false", "true", "false") == "true",
	}
	if d := strings.TrimSuffix(r.String("COGNITO_DOMAIN", ""), "/"); d != "" {
		// Cognito's logout endpoint: logout_uri must be one of the client's sign-out URLs.
		c.LogoutURL = d + "/logout?" + url.Values{"client_id": {c.ClientID}, "logout_uri": {c.URL + "/"}}.Encode()
	}
	return c, r.Err()
}

// SFN is what the console needs of Step Functions: exactly the console role's grants on the
// restore state machine (a preview is a restore execution with dryRun set).
type SFN interface {
	StartExecution(ctx context.Context, in *sfn.StartExecutionInput, optFns ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
	DescribeExecution(ctx context.Context, in *sfn.DescribeExecutionInput, optFns ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
}

// S3 is what the console reads the buckets with.
type S3 interface {
	console.ConsoleS3
	runlog.S3
}

// New builds the console: it reads with client, signs download links with presign, and starts
// restores through sf.
func New(cfg Config, client S3, presign *s3.PresignClient, sf SFN, auth console.Auth, logger *slog.Logger) (*console.Server, error) {
	return console.New(console.Options{
		S3: client, Source: cfg.Source, Backup: cfg.Backup, Run: cfg.Run, RestoreTargets: cfg.RestoreTargets,
		Auth: auth, Logger: logger,
		StartRestore: func(ctx context.Context, name string, input []byte) error {
			_, err := awsrun.Start(ctx, sf, cfg.RestoreStateMachineArn, name, input)
			return err
		},
		Execution: func(ctx context.Context, name string) (console.Execution, error) {
			return describe(ctx, sf, cfg.RestoreStateMachineArn, name)
		},
		AllowExact: cfg.AllowExact,
		Presign: func(ctx context.Context, bucket, key, versionID, filename string) (string, error) {
			req, err := presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: aws.String(versionID),
				ResponseContentDisposition: aws.String(fmt.Sprintf("attachment; filename=%q", filename))},
				s3.WithPresignExpires(DefaultURLLifetime))
			if err != nil {
				return "", err
			}
			return req.URL, nil
		},
	})
}

// describe is what DescribeExecution says of the restore execution name.
func describe(ctx context.Context, sf SFN, stateMachineArn, name string) (console.Execution, error) {
	// arn:aws:states:<region>:<account>:stateMachine:<machine> → …:execution:<machine>:<name>
	arn := strings.Replace(stateMachineArn, ":stateMachine:", ":execution:", 1) + ":" + name
	d, err := sf.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	var missing *sfntypes.ExecutionDoesNotExist
	if errors.As(err, &missing) {
		return console.Execution{}, console.ErrNoSuchExecution
	}
	if err != nil {
		return console.Execution{}, fmt.Errorf("describe restore %s: %w", name, err)
	}
	return console.Execution{Input: []byte(aws.ToString(d.Input)), Status: string(d.Status), Error: aws.ToString(d.Error), Cause: aws.ToString(d.Cause)}, nil
}

// Auth is the sign-in through cfg's provider.
func Auth(ctx context.Context, cfg Config) (console.Auth, error) {
	return oidcauth.New(ctx, oidcauth.Config{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, BaseURL: cfg.URL,
		RestoreGroup: cfg.RestoreGroup, LogoutURL: cfg.LogoutURL})
}
