// Command reporter is the bucketvault reporter Lambda function (provided.al2023): it aggregates
// the batch outcomes into runs/<execution>/report.json. See package shared/reporter.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/reporter"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	client, err := s3client.New(context.Background(), s3client.Options{MaxConns: 32})
	if err != nil {
		return err
	}
	cfg, cfgErr := reporter.ConfigFromEnv(envconf.Env())
	h := &reporter.Handler{S3: client, Config: cfg, Logger: slog.New(slog.NewJSONHandler(os.Stdout, nil))}
	lambda.Start(lambdafn.Handler(h.Handle, cfgErr))
	return nil
}
