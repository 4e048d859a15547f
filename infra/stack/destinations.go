package stack

// Further destinations (the destinations setting): buckets beside the backup bucket that every
// backup also writes, each keeping its own versioned history. The functions read them from
// DESTINATIONS (package shared/destination); this file turns the setting into buckets, grants and
// that variable.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/bucketvault/bucketvault/shared/destination"
)

// DestinationBucketID is the logical id of the bucket in a destination's own stack.
const DestinationBucketID = "DestinationBucket"

// Kinds of destination, by the fields a DestinationSetting has.
const (
	// DestinationCreated: no bucket, a region: the app creates the bucket in a stack of its own
	// in that Region of the same account (DestinationStackID), named CreatedBucketName.
	DestinationCreated = "created"
	// DestinationImported: a bucket (and an account, when another account owns it): an existing
	// versioned bucket of the same provider, written with server-side copies under the
	// functions' roles; its owner's bucket policy must allow them (the
	// Destination<Name>BucketPolicy output).
	DestinationImported = "imported"
	// DestinationOtherProvider: an endpoint and a credentials secret: a bucket of another
	// S3-compatible provider, written with streamed copies under the secret's credentials.
	DestinationOtherProvider = "other-provider"
)

// DestinationSetting is one entry of the destinations setting (a JSON array).
type DestinationSetting struct {
	// Name identifies the destination (batch files, reports, restores --from NAME): the rules
	// of package shared/destination (lower-case letters, digits and hyphens, at most 32, not
	// "primary").
	Name string `json:"name"`
	// Bucket is an existing bucket's name; empty: the app creates one in Region.
	Bucket string `json:"bucket,omitempty"`
	// Region is the bucket's Region; empty for an existing bucket means the functions'.
	Region string `json:"region,omitempty"`
	// Account owns an existing bucket of another AWS account (12 digits).
	Account string `json:"account,omitempty"`
	// Endpoint and CredentialsSecret make it another provider's bucket: its S3 endpoint and
	// the complete ARN of a Secrets Manager secret whose string is {"accessKeyId": …,
	// "secretAccessKey": …}.
	Endpoint          string `json:"endpoint,omitempty"`
	CredentialsSecret string `json:"credentialsSecret,omitempty"`
}

// Kind is DestinationCreated, DestinationImported or DestinationOtherProvider.
func (d DestinationSetting) Kind() string {
	switch {
	case d.Endpoint != "" || d.CredentialsSecret != "":
		return DestinationOtherProvider
	case d.Bucket != "":
		return DestinationImported
	}
	return DestinationCreated
}

// DestinationStackID is the id (and stack name) of the stack holding a created destination's
// bucket, beside the backup stack id.
func DestinationStackID(backupStackID, name string) string { return backupStackID + "-" + name }

// CreatedBucketName names the bucket the app creates for a destination: unique per deployment
// (prefix), destination, account and Region, so that the backup stack knows it without a
// cross-Region reference.
func CreatedBucketName(prefix, name, account, region string) string {
	return prefix + "-" + name + "-" + account + "-" + region
}

// destinationFields are the setting's fields, in the order the messages name them.
var destinationFields = []string{"name", "bucket", "region", "account", "endpoint", "credentialsSecret"}

var (
	awsRegionRe   = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)
	otherRegionRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	accountRe     = regexp.MustCompile(`^[0-9]{12}$`)
	// A complete secret ARN ends in the six characters Secrets Manager appends to the name;
	// a grant on a partial ARN would match no secret.
	secretArnRe = regexp.MustCompile(`^arn:aws(-cn|-us-gov)?:secretsmanager:[a-z]{2}(-[a-z]+)+-[0-9]{1,2}:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$`)
)

// destinationSettings reads p.Destinations strictly: every entry's fields, its kind's rules,
// and then package shared/destination's rules (names, duplicates, at most
// destination.MaxFurther, endpoints) on the DESTINATIONS the functions will get. Each error
// starts with "destinations:" and names the entry and the field.
func (p Props) destinationSettings() ([]DestinationSetting, error) {
	if strings.TrimSpace(p.Destinations) == "" {
		return nil, nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("destinations: "+format, args...)
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(p.Destinations), &raw); err != nil {
		return nil, bad("want a JSON array of objects with %s: %v", strings.Join(destinationFields, ", "), err)
	}
	for i, entry := range raw {
		for _, field := range slices.Sorted(maps.Keys(entry)) {
			switch {
			case slices.Contains(destinationFields, field):
			case strings.Contains(strings.ToLower(field), "kms"):
				return nil, bad("destination %d: %s: a KMS-encrypted destination is not supported yet (its change detection would need the ETag index, which only the backup bucket has); destinations are encrypted with SSE-S3", i, field)
			default:
				return nil, bad("destination %d: unknown field %q (want %s)", i, field, strings.Join(destinationFields, ", "))
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(p.Destinations)))
	dec.DisallowUnknownFields()
	var ds []DestinationSetting
	if err := dec.Decode(&ds); err != nil {
		return nil, bad("%v", err)
	}
	var errs []error
	for i, d := range ds {
		at := fmt.Sprintf("destination %d (%q)", i, d.Name)
		if d.Bucket != "" && !bucketNameRe.MatchString(d.Bucket) {
			errs = append(errs, bad("%s: bucket %q is not a valid bucket name", at, d.Bucket))
		}
		if d.Account != "" && !accountRe.MatchString(d.Account) {
			errs = append(errs, bad("%s: account %q: want the 12 digits of an AWS account id", at, d.Account))
		}
		switch d.Kind() {
		case DestinationCreated:
			switch {
			case d.Region == "":
				errs = append(errs, bad("%s: region: required for a bucket the app creates (or give bucket: an existing one)", at))
			case !awsRegionRe.MatchString(d.Region):
				errs = append(errs, bad("%s: region %q is not an AWS Region (like eu-west-1)", at, d.Region))
			}
			if d.Account != "" {
				errs = append(errs, bad("%s: account: the app creates a destination's bucket in its own account; for another account's, give bucket (an existing bucket) with account", at))
			}
			if n := len(CreatedBucketName(p.NamePrefix, d.Name, "123456789012", d.Region)); n > 63 {
				errs = append(errs, bad("%s: the bucket the app creates, %s, would have %d characters, S3 allows 63: shorten name or namePrefix", at,
					CreatedBucketName(p.NamePrefix, d.Name, "<account>", d.Region), n))
			}
		case DestinationImported:
			if d.Region != "" && !awsRegionRe.MatchString(d.Region) {
				errs = append(errs, bad("%s: region %q is not an AWS Region (like eu-west-1)", at, d.Region))
			}
		case DestinationOtherProvider:
			if d.Endpoint == "" || d.CredentialsSecret == "" || d.Bucket == "" {
				errs = append(errs, bad("%s: endpoint, credentialsSecret and bucket: another provider's destination needs all three", at))
			}
			if d.CredentialsSecret != "" && !secretArnRe.MatchString(d.CredentialsSecret) {
				errs = append(errs, bad("%s: credentialsSecret %q: want the complete ARN of a Secrets Manager secret (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX, with the six characters Secrets Manager appends)", at, d.CredentialsSecret))
			}
			if d.Account != "" {
				errs = append(errs, bad("%s: account: only for an existing bucket of another AWS account, not with endpoint", at))
			}
			if d.Region != "" && !otherRegionRe.MatchString(d.Region) {
				errs = append(errs, bad("%s: region %q: want lower-case letters, digits and hyphens (the provider's signing Region)", at, d.Region))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// The functions' own rules, on what they will read (created buckets named with a
	// placeholder account).
	env, err := json.Marshal(runtimeDestinations(ds, func(d DestinationSetting) string {
		return CreatedBucketName(p.NamePrefix, d.Name, "123456789012", d.Region)
	}))
	if err != nil {
		return nil, bad("%v", err)
	}
	if _, err := destination.Parse(string(env), p.SourceBucketName, p.BackupBucketName, p.RunBucketName); err != nil {
		return nil, bad("%s", strings.TrimPrefix(err.Error(), destination.Variable+" "))
	}
	return ds, nil
}

// runtimeDestinations are the DESTINATIONS entries for ds; created names a created bucket.
func runtimeDestinations(ds []DestinationSetting, created func(DestinationSetting) string) []destination.Destination {
	var out []destination.Destination
	for _, d := range ds {
		r := destination.Destination{Name: d.Name, Bucket: d.Bucket, Region: d.Region, Endpoint: d.Endpoint}
		if d.Kind() == DestinationCreated {
			r.Bucket = created(d)
		}
		if d.CredentialsSecret != "" {
			r.Credentials = destination.SecretCredentials + d.CredentialsSecret
		}
		out = append(out, r)
	}
	return out
}

// DestinationResources is one further destination as deployed.
type DestinationResources struct {
	DestinationSetting
	// Stack and CreatedBucket are, for a created destination, the stack in its Region and the
	// bucket in it; nil otherwise.
	Stack         awscdk.Stack
	CreatedBucket awss3.Bucket
	// BucketName is the bucket's name in the backup stack (a created one's holds the account,
	// a token until deployed); BucketArn its ARN, empty for another provider's.
	BucketName, BucketArn string
	// grants are, per function, the statements mirrored onto the bucket (destinationOutputs
	// turns them into the other account's bucket policy).
	grants map[string][]awsiam.PolicyStatement
}

// destinationFunctions are the functions that read or write the destinations; the others
// (reporter, console, verifier) get nothing on them.
var destinationFunctions = []string{Lister, Copier, Planner, RestoreCopier}

// destinations creates, beside the backup stack id in scope, a stack for each created
// destination, and fills s.Destinations.
func (s *BackupStack) destinations(scope constructs.Construct, id string) error {
	settings, err := s.Props.destinationSettings()
	if err != nil {
		return err
	}
	for _, d := range settings {
		r := &DestinationResources{DestinationSetting: d, BucketName: d.Bucket, grants: map[string][]awsiam.PolicyStatement{}}
		if d.Kind() == DestinationCreated {
			r.Stack, r.CreatedBucket = s.destinationStack(scope, DestinationStackID(id, d.Name), d)
			r.BucketName = CreatedBucketName(s.Props.NamePrefix, d.Name, *s.Stack.Account(), d.Region)
			// The bucket exists before the functions write to it (cdk deploy BucketVault
			// deploys it first). Only an order: nothing refers across the Regions.
			s.Stack.AddStackDependency(r.Stack, jsii.String("destination "+d.Name+"'s bucket"))
		}
		if d.Kind() != DestinationOtherProvider {
			r.BucketArn = fmt.Sprintf("arn:%s:s3:::%s", *awscdk.Aws_PARTITION(), r.BucketName)
		}
		s.Destinations = append(s.Destinations, r)
	}
	return nil
}

// destinationStack is a created destination's stack in its Region (the backup stack's
// account): the bucket, with the backup bucket's properties (historyBucketProps: versioning,
// lifecycle, TLS only, no public access, SSE-S3, Object Lock when set), named
// CreatedBucketName.
func (s *BackupStack) destinationStack(scope constructs.Construct, id string, d DestinationSetting) (awscdk.Stack, awss3.Bucket) {
	env := &awscdk.Environment{Region: jsii.String(d.Region)}
	if s.Props.Env != nil {
		env.Account = s.Props.Env.Account
	}
	st := awscdk.NewStack(scope, jsii.String(id), &awscdk.StackProps{
		Env:         env,
		Description: jsii.String("bucketvault: destination " + d.Name + ", a further versioned copy of the backup in " + d.Region),
	})
	p := s.Props
	b := awss3.NewBucket(st, jsii.String(DestinationBucketID), historyBucketProps(p, jsii.String(CreatedBucketName(p.NamePrefix, d.Name, *st.Account(), d.Region))))
	overrideID(b, DestinationBucketID)
	lockBucket(b, p)
	retainPolicy(b)
	awscdk.NewCfnOutput(st, jsii.String("DestinationBucketName"), &awscdk.CfnOutputProps{
		Description: jsii.String("Destination " + d.Name + "'s versioned bucket (retained when the stack is deleted)"),
		Value:       b.BucketName(),
	})
	return st, b
}

// withDestinations gives the functions that work on destinations (destinationFunctions)
// DESTINATIONS and their grants: on each same-provider destination's bucket exactly the
// actions the function has on the backup bucket, statement by statement (mirror); for another
// provider's, secretsmanager:GetSecretValue on its credentials secret and nothing in S3.
func (s *BackupStack) withDestinations(specs []functionSpec) []functionSpec {
	if len(s.Destinations) == 0 {
		return specs
	}
	var ds []DestinationSetting
	names := map[string]string{}
	for _, d := range s.Destinations {
		ds = append(ds, d.DestinationSetting)
		names[d.Name] = d.BucketName
	}
	env := *s.Stack.ToJsonString(runtimeDestinations(ds, func(d DestinationSetting) string { return names[d.Name] }), nil)
	bak := *s.BackupBucket.BucketArn()
	for i, spec := range specs {
		if !slices.Contains(destinationFunctions, spec.name) {
			continue
		}
		spec.env = maps.Clone(spec.env)
		spec.env[destination.Variable] = env
		statements := slices.Clone(spec.statements)
		for _, d := range s.Destinations {
			if d.Kind() == DestinationOtherProvider {
				statements = append(statements, allow("ReadCredentials"+title(d.Name), []string{"secretsmanager:GetSecretValue"}, d.CredentialsSecret))
				continue
			}
			mirrored := mirror(spec.statements, bak, d.BucketArn, title(d.Name))
			d.grants[spec.name] = mirrored
			statements = append(statements, mirrored...)
		}
		spec.statements = statements
		specs[i] = spec
	}
	return specs
}

// mirror returns, for each of statements that grants on the backup bucket (bak) or its objects
// (bak/*), a statement granting the same actions, with the same conditions, on dst or dst/*;
// its Sid is the original's with suffix.
func mirror(statements []awsiam.PolicyStatement, bak, dst, suffix string) []awsiam.PolicyStatement {
	var out []awsiam.PolicyStatement
	for _, st := range statements {
		var resources []string
		for _, r := range *st.Resources() {
			switch *r {
			case bak:
				resources = append(resources, dst)
			case bak + "/*":
				resources = append(resources, dst+"/*")
			}
		}
		if len(resources) == 0 {
			continue
		}
		var actions []string
		for _, a := range *st.Actions() {
			actions = append(actions, *a)
		}
		m := allow(*st.Sid()+suffix, actions, resources...)
		if c, ok := st.Conditions().(map[string]any); ok && len(c) > 0 {
			m.AddConditions(&c)
		}
		out = append(out, m)
	}
	return out
}

// destinationOutputs adds, for each existing bucket of another account, the bucket policy its
// owner adds (an output to copy): each role allowed exactly its mirrored grants, and requests
// without TLS denied.
func (s *BackupStack) destinationOutputs() {
	for _, d := range s.Destinations {
		if d.Kind() != DestinationImported || d.Account == "" {
			continue
		}
		awscdk.NewCfnOutput(s.Stack, jsii.String("Destination"+title(d.Name)+"BucketPolicy"), &awscdk.CfnOutputProps{
			Description: jsii.String("The bucket policy account " + d.Account + " puts on " + d.Bucket + " (destination " + d.Name + "): bucketvault's roles may write and read it"),
			Value:       s.Stack.ToJsonString(s.destinationBucketPolicy(d), nil),
		})
	}
}

// destinationBucketPolicy is the policy document destinationOutputs shows for d.
func (s *BackupStack) destinationBucketPolicy(d *DestinationResources) map[string]any {
	var statements []any
	for _, fn := range destinationFunctions {
		role, ok := s.Roles[fn]
		if !ok {
			continue
		}
		for _, st := range d.grants[fn] {
			var actions []string
			for _, a := range *st.Actions() {
				actions = append(actions, *a)
			}
			resources := []string{}
			for _, r := range *st.Resources() {
				resources = append(resources, *r)
			}
			statements = append(statements, map[string]any{
				"Sid": "Bucketvault" + title(fn) + *st.Sid(), "Effect": "Allow",
				"Principal": map[string]any{"AWS": *role.RoleArn()}, "Action": actions, "Resource": resources,
			})
		}
	}
	statements = append(statements, map[string]any{
		"Sid": "TLSOnly", "Effect": "Deny", "Principal": "*", "Action": []string{"s3:*"},
		"Resource":  []string{d.BucketArn, d.BucketArn + "/*"},
		"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
	})
	return map[string]any{"Version": "2012-10-17", "Statement": statements}
}
