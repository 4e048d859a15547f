// Command infra is bucketvault's CDK app: `cdk synth|deploy|destroy` run it (cdk.json) and it
// defines the BucketVault stack from the CDK context settings README.md ("Deploy to AWS") lists
// and infra/README.md ("Settings") documents.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/bucketvault/bucketvault/infra/stack"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bucketvault infra:", err)
		os.Exit(1)
	}
}

func run() error {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	props, err := stack.PropsFromContext(app.Node())
	if err != nil {
		return err
	}
	// The CDK CLI sets these from the caller's credentials; without them (offline synth) the
	// stack is environment-agnostic.
	if account, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION"); account != "" && region != "" {
		props.Env = &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(region)}
	}
	if _, err := stack.NewBackupStack(app, "BucketVault", props); err != nil {
		return err
	}
	app.Synth(nil)
	return nil
}
