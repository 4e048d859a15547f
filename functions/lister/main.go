// Command lister is the bucketvault lister Lambda function (provided.al2023): it merges the source
// and backup listings and writes work batches to the run bucket. See package shared/lister.
package main

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/lister"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

func main() { lambdafn.Main(build) }

func build(ctx context.Context, logger *slog.Logger) (lambda.Handler, error) {
	cfg, cfgErr := lister.ConfigFromEnv(envconf.Env())
	client, err := s3client.New(ctx, s3client.Options{MaxConns: 8})
	if err != nil {
		return nil, err
	}
	return lambdafn.Handler((&lister.Handler{S3: client, Config: cfg, Logger: logger}).Handle, cfgErr), nil
}
