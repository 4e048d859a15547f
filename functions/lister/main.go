// Command lister is the bucketvault lister Lambda function (provided.al2023): it merges the source
// and backup listings and writes work batches to the run bucket. See package shared/lister.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/lister"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	client, err := s3client.New(context.Background(), s3client.Options{MaxConns: 8})
	if err != nil {
		return err
	}
	cfg, cfgErr := lister.ConfigFromEnv(envconf.Env())
	h := &lister.Handler{S3: client, Config: cfg, Logger: slog.New(slog.NewJSONHandler(os.Stdout, nil))}
	lambda.Start(lambdafn.Handler(h.Handle, cfgErr))
	return nil
}
