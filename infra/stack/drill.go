package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/jsii-runtime-go"

	"github.com/bucketvault/bucketvault/shared/verify"
)

// DrillBucketID is the logical id of the restore drills' scratch bucket.
const DrillBucketID = "DrillBucket"

// DrillScratchExpiryDays is how long a scratch copy a drill failed to delete stays: a drill
// deletes its copies itself; this lifecycle rule only sweeps what a failed drill left.
const DrillScratchExpiryDays = 1

// drillBucket is the bucket a restore drill restores its restore sample into, under
// verify.ScratchPrefix (created on first use). Unversioned, so a deletion removes a copy; only
// the restore copier may write there (that prefix), only the verifier delete. Retained with its
// TLS-only policy like the other buckets; its lifecycle rule empties it.
func (s *BackupStack) drillBucket() awss3.Bucket {
	if c := s.Stack.Node().TryFindChild(jsii.String(DrillBucketID)); c != nil {
		return c.(awss3.Bucket)
	}
	b := awss3.NewBucket(s.Stack, jsii.String(DrillBucketID), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		EnforceSSL:        jsii.Bool(true),
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id: jsii.String("drill-scratch"), Prefix: jsii.String(verify.ScratchPrefix),
			Expiration: days(DrillScratchExpiryDays), AbortIncompleteMultipartUploadAfter: days(1),
		}},
	})
	overrideID(b, DrillBucketID)
	retainPolicy(b)
	return b
}

// startSyncStatements grant a state machine's role what states:startExecution.sync needs to
// start another state machine and wait for it, as AWS documents it ("IAM policies for calling
// nested Step Functions workflows", synchronous): StartExecution on that state machine,
// DescribeExecution and StopExecution on its executions, and the managed EventBridge rule
// through which Step Functions learns that the child ended.
func startSyncStatements(smArn, execArns, ruleArn string) []awsiam.PolicyStatement {
	return []awsiam.PolicyStatement{
		allow("StartNestedExecution", []string{"states:StartExecution"}, smArn),
		allow("WaitForNestedExecution", []string{"states:DescribeExecution", "states:StopExecution"}, execArns),
		allow("NestedExecutionEvents", []string{"events:PutTargets", "events:PutRule", "events:DescribeRule"}, ruleArn),
	}
}
