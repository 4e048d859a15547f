// Command console is the bucketvault restore console as a Lambda function (provided.al2023)
// behind an API Gateway HTTP API, signing people in through the stack's Cognito user pool. See
// package statemachine/console/consoleaws.
package main

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/s3client"
	"github.com/bucketvault/bucketvault/statemachine/console/consoleaws"
)

func main() { lambdafn.Main(build) }

func build(ctx context.Context, logger *slog.Logger) (lambda.Handler, error) {
	cfg, err := consoleaws.ConfigFromEnv(envconf.Env())
	if err != nil {
		return nil, err
	}
	client, err := s3client.New(ctx, s3client.Options{MaxConns: 64})
	if err != nil {
		return nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	auth, err := consoleaws.Auth(ctx, cfg)
	if err != nil {
		return nil, err
	}
	srv, err := consoleaws.New(cfg, client, s3.NewPresignClient(client), sfn.NewFromConfig(awsCfg), auth, logger)
	if err != nil {
		return nil, err
	}
	return lambda.NewHandler(httpadapter.NewV2(srv.Handler()).ProxyWithContext), nil
}
