// Command copier is the bucketvault copier Lambda function (provided.al2023): it copies one work
// batch into the backup bucket. See package shared/copier.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/bucketvault/bucketvault/shared/copier"
	"github.com/bucketvault/bucketvault/shared/envconf"
	"github.com/bucketvault/bucketvault/shared/lambdafn"
	"github.com/bucketvault/bucketvault/shared/s3client"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run() error {
	cfg, cfgErr := copier.ConfigFromEnv(envconf.Env())
	// Objects in flight, plus their parts, each hold a connection.
	client, err := s3client.New(context.Background(), s3client.Options{MaxConns: max(cfg.Concurrency, 1) * 2})
	if err != nil {
		return err
	}
	h := &copier.Handler{S3: client, Config: cfg, Logger: slog.New(slog.NewJSONHandler(os.Stdout, nil))}
	lambda.Start(lambdafn.Handler(h.Handle, cfgErr))
	return nil
}
