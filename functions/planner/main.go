// Command planner is the bucketvault restore planner Lambda function (provided.al2023): it picks
// the versions current at the requested moment and writes work batches. See package shared/planner.
package main

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/planner"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

func main() { lambdafn.Main(build) }

func build(ctx context.Context, logger *slog.Logger) (lambda.Handler, error) {
	cfg, cfgErr := planner.ConfigFromEnv(envconf.Env())
	client, err := s3client.New(ctx, s3client.Options{MaxConns: 32})
	if err != nil {
		return nil, err
	}
	return lambdafn.Handler((&planner.Handler{S3: client, Config: cfg, Logger: logger}).Handle, cfgErr), nil
}
