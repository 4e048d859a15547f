package stack

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscognito"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
)

// IDs of the console's constructs.
const (
	ConsoleUserPoolID     = "ConsoleUserPool"
	ConsoleUserPoolDomain = "ConsoleSignInDomain"
	ConsoleClientID       = "ConsoleClient"
	ConsoleRestoreGroupID = "ConsoleRestoreGroup"
	ConsoleAdminID        = "ConsoleAdmin"
	ConsoleAPIID          = "ConsoleApi"
	// ConsoleTimeoutSeconds is the console function's timeout: API Gateway ends an HTTP API
	// request after 30 s ("Amazon API Gateway quotas": integration timeout 30 seconds).
	ConsoleTimeoutSeconds = 30
)

// ConsoleResources are the deployed restore console.
type ConsoleResources struct {
	UserPool awscognito.UserPool
	Client   awscognito.UserPoolClient
	Domain   awscognito.UserPoolDomain
	API      awsapigatewayv2.HttpApi
}

// console deploys the restore console: a Cognito user pool (no self sign-up) with its hosted
// sign-in domain and a public app client (authorization code with PKCE), the restore group, an
// HTTP API whose every route goes to the console function, and that function with a role that
// may read the backup and the run bucket and start and describe restore executions, nothing
// else. A restore runs under the restore state machine's roles, never the console's.
func (s *BackupStack) console() {
	p := s.Props
	pool := awscognito.NewUserPool(s.Stack, jsii.String(ConsoleUserPoolID), &awscognito.UserPoolProps{
		UserPoolName:      jsii.String(s.name("console")),
		SelfSignUpEnabled: jsii.Bool(false), // an administrator adds people (README "The restore console on AWS")
		SignInAliases:     &awscognito.SignInAliases{Email: jsii.Bool(true)},
		AutoVerify:        &awscognito.AutoVerifiedAttrs{Email: jsii.Bool(true)},
		Mfa:               awscognito.Mfa_OPTIONAL,
		MfaSecondFactor:   &awscognito.MfaSecondFactor{Otp: jsii.Bool(true), Sms: jsii.Bool(false)},
		AccountRecovery:   awscognito.AccountRecovery_EMAIL_ONLY,
		PasswordPolicy: &awscognito.PasswordPolicy{MinLength: jsii.Number(12), RequireDigits: jsii.Bool(true), RequireLowercase: jsii.Bool(true),
			RequireUppercase: jsii.Bool(true), RequireSymbols: jsii.Bool(false), TempPasswordValidity: days(7)},
		// Lite: the classic hosted sign-in page and TOTP MFA are all the console needs; free for
		// the first 10,000 monthly active users (aws.amazon.com/cognito/pricing).
		FeaturePlan:   awscognito.FeaturePlan_LITE,
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN, // the people, like the backups, outlive the stack
	})
	overrideID(pool, ConsoleUserPoolID)
	prefix := p.ConsoleDomainPrefix
	if prefix == "" {
		prefix = p.NamePrefix + "-" + *s.Stack.Account()
	}
	domain := pool.AddDomain(jsii.String(ConsoleUserPoolDomain), &awscognito.UserPoolDomainOptions{
		CognitoDomain: &awscognito.CognitoDomainOptions{DomainPrefix: jsii.String(prefix)},
	})
	overrideID(domain, ConsoleUserPoolDomain)

	// The API exists before the client (its address is the client's callback) and the function
	// (its address is the function's CONSOLE_URL); its route and integration come last.
	api := awsapigatewayv2.NewHttpApi(s.Stack, jsii.String(ConsoleAPIID), &awsapigatewayv2.HttpApiProps{
		ApiName:     jsii.String(s.name("console")),
		Description: jsii.String("bucketvault restore console"),
	})
	overrideID(api, ConsoleAPIID)
	url := *api.ApiEndpoint()
	client := pool.AddClient(jsii.String(ConsoleClientID), &awscognito.UserPoolClientOptions{
		UserPoolClientName:         jsii.String(s.name("console")),
		GenerateSecret:             jsii.Bool(false), // a public client: PKCE protects the code
		AuthFlows:                  &awscognito.AuthFlow{},
		PreventUserExistenceErrors: jsii.Bool(true),
		EnableTokenRevocation:      jsii.Bool(true),
		IdTokenValidity:            awscdk.Duration_Hours(jsii.Number(1)),
		AccessTokenValidity:        awscdk.Duration_Hours(jsii.Number(1)),
		OAuth: &awscognito.OAuthSettings{
			Flows:        &awscognito.OAuthFlows{AuthorizationCodeGrant: jsii.Bool(true)},
			Scopes:       &[]awscognito.OAuthScope{awscognito.OAuthScope_OPENID(), awscognito.OAuthScope_EMAIL(), awscognito.OAuthScope_PROFILE()},
			CallbackUrls: strs(url + "/auth/callback"),
			LogoutUrls:   strs(url + "/"),
		},
		SupportedIdentityProviders: &[]awscognito.UserPoolClientIdentityProvider{awscognito.UserPoolClientIdentityProvider_COGNITO()},
	})
	overrideID(client, ConsoleClientID)
	group := awscognito.NewCfnUserPoolGroup(s.Stack, jsii.String(ConsoleRestoreGroupID), &awscognito.CfnUserPoolGroupProps{
		UserPoolId:  pool.UserPoolId(),
		GroupName:   jsii.String(p.ConsoleRestoreGroup),
		Description: jsii.String("May restore from the bucketvault console; everyone else signed in may browse and download"),
	})
	if p.ConsoleAdminEmail != "" {
		admin := awscognito.NewCfnUserPoolUser(s.Stack, jsii.String(ConsoleAdminID), &awscognito.CfnUserPoolUserProps{
			UserPoolId:             pool.UserPoolId(),
			Username:               jsii.String(p.ConsoleAdminEmail),
			UserAttributes:         &[]any{&awscognito.CfnUserPoolUser_AttributeTypeProperty{Name: jsii.String("email"), Value: jsii.String(p.ConsoleAdminEmail)}, &awscognito.CfnUserPoolUser_AttributeTypeProperty{Name: jsii.String("email_verified"), Value: jsii.String("true")}},
			DesiredDeliveryMediums: strs("EMAIL"),
		})
		awscognito.NewCfnUserPoolUserToGroupAttachment(s.Stack, jsii.String(ConsoleAdminID+"InRestoreGroup"), &awscognito.CfnUserPoolUserToGroupAttachmentProps{
			UserPoolId: pool.UserPoolId(),
			GroupName:  group.Ref(), // the group's name, and a dependency on it
			Username:   admin.Ref(),
		})
	}

	bak, run := *s.BackupBucket.BucketArn(), *s.RunBucket.BucketArn()
	restoreExecutions := *s.Stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("states"), Resource: jsii.String("execution"),
		ResourceName: jsii.String(s.name(RestoreStateMachine) + ":*"), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME})
	statements := []awsiam.PolicyStatement{
		// HeadBucket, ListObjectsV2 (browse, search, runs) and ListObjectVersions (a file's
		// history, a moment) of the backup; ListObjectsV2 and HeadBucket of the run bucket.
		allow("ListBackupAndRuns", []string{"s3:ListBucket"}, bak, run),
		allow("ListBackupVersions", []string{"s3:ListBucketVersions"}, bak),
		// GetObject of a version: the download links it signs.
		allow("ReadBackupVersions", []string{"s3:GetObject", "s3:GetObjectVersion"}, bak+"/*"),
		// Reports, and a running execution's manifest, outcomes and thaw lists (progress).
		allow("ReadRuns", []string{"s3:GetObject"}, run+"/runs/*", run+"/work/*"),
		// Restores and their previews (dry runs) are executions of the restore state machine.
		allow("StartRestores", []string{"states:StartExecution"}, *s.RestoreStateMachine.StateMachineArn()),
		allow("FollowRestores", []string{"states:DescribeExecution"}, restoreExecutions),
	}
	if s.BackupKey != nil {
		statements = append(statements, allow("UseBackupKey", []string{"kms:Decrypt"}, *s.BackupKey.KeyArn()))
	}
	fn := s.function(functionSpec{
		name:        Console,
		description: "bucketvault restore console: browse the backup at any moment, restore through the restore state machine",
		memoryMB:    p.ConsoleMemoryMB,
		timeout:     ConsoleTimeoutSeconds,
		env: map[string]string{
			"SOURCE_BUCKET":             *s.SourceBucket.BucketName(),
			"BACKUP_BUCKET":             *s.BackupBucket.BucketName(),
			"RUN_BUCKET":                *s.RunBucket.BucketName(),
			"RESTORE_TARGETS":           joinTargets(p.RestoreTargets),
			"RESTORE_STATE_MACHINE_ARN": *s.RestoreStateMachine.StateMachineArn(),
			"CONSOLE_URL":               url,
			"OIDC_ISSUER":               *pool.UserPoolProviderUrl(),
			"OIDC_CLIENT_ID":            *client.UserPoolClientId(),
			"RESTORE_GROUP":             p.ConsoleRestoreGroup,
			"COGNITO_DOMAIN":            *domain.BaseUrl(nil),
			"ALLOW_EXACT_ROLLBACK":      fmt.Sprint(p.AllowExactRollback),
		},
		statements: statements,
	})
	api.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
		Path:        jsii.String("/{proxy+}"),
		Methods:     &[]awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod_GET, awsapigatewayv2.HttpMethod_POST},
		Integration: awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("ConsoleIntegration"), fn, nil),
	})
	api.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
		Path:        jsii.String("/"),
		Methods:     &[]awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod_GET},
		Integration: awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("ConsoleRootIntegration"), fn, nil),
	})
	s.Console = &ConsoleResources{UserPool: pool, Client: client, Domain: domain, API: api}
	out := func(id, description string, value *string) {
		awscdk.NewCfnOutput(s.Stack, jsii.String(id), &awscdk.CfnOutputProps{Description: jsii.String(description), Value: value})
	}
	out("ConsoleUrl", "The restore console (sign in with a user of the console user pool)", jsii.String(url+"/"))
	out("ConsoleUserPoolId", fmt.Sprintf("The console's users: add people here; members of %s may restore", p.ConsoleRestoreGroup), pool.UserPoolId())
}
