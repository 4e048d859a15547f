// Command reporter is the bucketvault reporter Lambda function (provided.al2023): it aggregates
// the batch outcomes into runs/<execution>/report.json. See package shared/reporter.
package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/reporter"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

func main() { lambdafn.Main(build) }

func build(ctx context.Context, logger *slog.Logger) (lambda.Handler, error) {
	lookup, secretErr := envconf.Lookup(envconf.Env()), error(nil)
	if v, _ := lookup(reporter.SecretURLsVariable); v != "" {
		awsCfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, err
		}
		lookup, secretErr = reporter.WithSecretURLs(ctx, secretsmanager.NewFromConfig(awsCfg), lookup)
	}
	cfg, cfgErr := reporter.ConfigFromEnv(lookup)
	cfg.NotifyErr = errors.Join(cfg.NotifyErr, secretErr) // recorded in every report, never failing a run
	client, err := s3client.New(ctx, s3client.Options{MaxConns: 32})
	if err != nil {
		return nil, err
	}
	return lambdafn.Handler((&reporter.Handler{S3: client, Config: cfg, Logger: logger}).Handle, cfgErr), nil
}
