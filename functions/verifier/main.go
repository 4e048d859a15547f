// Command verifier is the bucketvault verifier Lambda function (provided.al2023): a restore
// drill's verify run, which checks a sample of the backup against the source and the last
// backup, and writes its report. See package shared/verify.
package main

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/s3client"
	"github.com/bucketvault/bucketvault/shared/verify"
)

func main() { lambdafn.Main(build) }

func build(ctx context.Context, logger *slog.Logger) (lambda.Handler, error) {
	cfg, cfgErr := verify.ConfigFromEnv(envconf.Env())
	client, err := s3client.New(ctx, s3client.Options{MaxConns: 2*cfg.Concurrency + 8})
	if err != nil {
		return nil, err
	}
	return lambdafn.Handler((&verify.Handler{S3: client, Config: cfg, Logger: logger}).Handle, cfgErr), nil
}
