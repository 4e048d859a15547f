// Command copier is the bucketvault copier Lambda function (provided.al2023): it copies one work
// batch into the backup bucket. See package shared/copier.
package main

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/bucketvault/bucketvault/shared/copier"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

func main() { lambdafn.Main(build) }

func build(ctx context.Context, logger *slog.Logger) (lambda.Handler, error) {
	cfg, cfgErr := copier.ConfigFromEnv(envconf.Env())
	// Objects in flight, and their parts, each hold a connection.
	client, err := s3client.New(ctx, s3client.Options{MaxConns: max(cfg.Concurrency, 1) * 2})
	if err != nil {
		return nil, err
	}
	return lambdafn.Handler((&copier.Handler{S3: client, Config: cfg, Logger: logger}).Handle, cfgErr), nil
}
