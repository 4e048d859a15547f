package stack

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/bucketvault/bucketvault/infra/policydoc"
	"github.com/bucketvault/bucketvault/shared/destination"
)

const (
	testDRRegion = "eu-west-1"
	testSecret   = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bucketvault/offsite-AbC123"
	testVault    = "vault-in-other-account"
	testOffsite  = "offsite-at-provider"
	testFilters  = `{"include":["prefix:data/"],"exclude":["glob:**/*.tmp"]}`
)

// The functions that work on destinations; the reporter, console and verifier do not.
var testDestinationFunctions = []string{Lister, Copier, Planner, RestoreCopier}

// The three kinds of destination at once, with Object Lock, a lifecycle other than the default
// and filters, as cdk.json would hold them.
var testDestinations = []any{
	map[string]any{"name": "dr", "region": testDRRegion},
	map[string]any{"name": "vault", "bucket": testVault, "account": "111122223333", "region": "eu-central-1"},
	map[string]any{"name": "offsite", "bucket": testOffsite, "endpoint": "https://s3.example.com", "credentialsSecret": testSecret},
}

// TestDestinations synthesizes a deployment with a created cross-Region destination, an
// existing bucket of another account and another provider's bucket, and checks the second
// stack, the DESTINATIONS the functions get and every role's grants on each destination.
func TestDestinations(t *testing.T) {
	s := synth(t, map[string]any{
		"sourceBucketName": testSource, "backupBucketName": testBackup, "runBucketName": testRun,
		"destinations":   testDestinations,
		"objectLockMode": "GOVERNANCE", "objectLockDays": "30", "noncurrentExpireDays": "400",
		"filters": testFilters,
	})
	dr := CreatedBucketName("bucketvault", "dr", testAccount, testDRRegion)
	drArn, vaultArn := "arn:aws:s3:::"+dr, "arn:aws:s3:::"+testVault

	t.Run("SecondStack", func(t *testing.T) {
		if len(s.stack.Destinations) != 3 || s.stack.Destinations[0].Stack == nil || s.stack.Destinations[1].Stack != nil || s.stack.Destinations[2].Stack != nil {
			t.Fatalf("destinations %v: want a stack for dr only", s.stack.Destinations)
		}
		st := s.stack.Destinations[0].Stack
		if got := *st.Region(); got != testDRRegion {
			t.Errorf("destination stack in %s, want %s", got, testDRRegion)
		}
		if got := *st.Account(); got != testAccount {
			t.Errorf("destination stack in account %s, want the backup stack's %s", got, testAccount)
		}
		if got := *st.StackName(); got != "BucketVault-dr" {
			t.Errorf("destination stack named %s", got)
		}
		if !slices.ContainsFunc(*s.stack.Stack.Dependencies(), func(d awscdk.Stack) bool { return *d.StackName() == *st.StackName() }) {
			t.Error("the backup stack does not depend on the destination's: cdk deploy BucketVault would not create its bucket first")
		}
		tpl := assertions.Template_FromStack(st, nil)
		js := *tpl.ToJSON()
		backupProps := s.resource(t, BackupBucketID)["Properties"].(map[string]any)
		bucket := js["Resources"].(map[string]any)[DestinationBucketID].(map[string]any)
		props := bucket["Properties"].(map[string]any)
		if props["BucketName"] != dr {
			t.Errorf("destination bucket named %v, want %s", props["BucketName"], dr)
		}
		// The backup bucket's properties, lifecycle and Object Lock included.
		for _, key := range []string{"VersioningConfiguration", "LifecycleConfiguration", "PublicAccessBlockConfiguration", "OwnershipControls", "ObjectLockEnabled", "ObjectLockConfiguration"} {
			if got, want := jsonOf(props[key]), jsonOf(backupProps[key]); got != want || props[key] == nil {
				t.Errorf("destination bucket %s = %s, want the backup bucket's %s", key, got, want)
			}
		}
		if got := jsonOf(props["LifecycleConfiguration"]); !strings.Contains(got, `"NoncurrentDays":400`) {
			t.Errorf("destination lifecycle %s: want the noncurrentExpireDays setting", got)
		}
		if got := jsonOf(props["BucketEncryption"]); got != `{"ServerSideEncryptionConfiguration":[{"ServerSideEncryptionByDefault":{"SSEAlgorithm":"AES256"}}]}` {
			t.Errorf("destination encryption %s, want SSE-S3", got)
		}
		if bucket["DeletionPolicy"] != "Retain" {
			t.Errorf("destination bucket DeletionPolicy %v, want Retain", bucket["DeletionPolicy"])
		}
		has(t, tpl, "AWS::S3::BucketPolicy", obj(
			"Bucket", ref(DestinationBucketID),
			"PolicyDocument", obj("Statement", []any{obj(
				"Effect", "Deny", "Action", "s3:*", "Principal", obj("AWS", "*"),
				"Condition", obj("Bool", obj("aws:SecureTransport", "false")),
				"Resource", []any{getAtt(DestinationBucketID, "Arn"), obj("Fn::Join", []any{"", []any{getAtt(DestinationBucketID, "Arn"), "/*"}})},
			)}),
		))
		for id, res := range js["Resources"].(map[string]any) {
			if typ := res.(map[string]any)["Type"]; typ != "AWS::S3::Bucket" && typ != "AWS::S3::BucketPolicy" {
				t.Errorf("destination stack has %s (%s): want only the bucket and its policy", id, typ)
			}
			if res.(map[string]any)["DeletionPolicy"] != "Retain" {
				t.Errorf("destination stack's %s is not retained", id)
			}
		}
		hasOutput(t, tpl, "DestinationBucketName", obj("Value", ref(DestinationBucketID)))
	})

	t.Run("DestinationsVariable", func(t *testing.T) {
		want := []destination.Destination{
			{Name: "dr", Bucket: dr, Region: testDRRegion},
			{Name: "vault", Bucket: testVault, Region: "eu-central-1"},
			{Name: "offsite", Bucket: testOffsite, Endpoint: "https://s3.example.com", Credentials: destination.SecretCredentials + testSecret},
		}
		for _, fn := range Functions {
			env := s.resource(t, FunctionID(fn))["Properties"].(map[string]any)["Environment"].(map[string]any)["Variables"].(map[string]any)
			raw, ok := env[destination.Variable]
			if !slices.Contains(testDestinationFunctions, fn) {
				if ok {
					t.Errorf("%s has %s: it does no destination work", fn, destination.Variable)
				}
				continue
			}
			v, err := s.resolver.Resolve(raw)
			if err != nil {
				t.Fatalf("%s %s: %v", fn, destination.Variable, err)
			}
			got, err := destination.Parse(v, testSource, testBackup, testRun)
			if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s %s = %s (%v), want %v", fn, destination.Variable, v, err, want)
			}
		}
	})

	// Each function that works on destinations has, on a same-provider destination's bucket,
	// exactly what it has on the backup bucket; another provider's costs one secret read.
	t.Run("LeastPrivilege", func(t *testing.T) {
		mirrored := map[string][]string{
			RoleID(Lister):        {"s3:ListBucket @", "s3:GetBucketVersioning @"},
			RoleID(Copier):        {"s3:ListBucket @", "s3:PutObject @/*", "s3:PutObjectTagging @/*", "s3:GetObject @/*", "s3:ListMultipartUploadParts @/*", "s3:AbortMultipartUpload @/*", "s3:DeleteObject @/*"},
			RoleID(Planner):       {"s3:ListBucket @", "s3:ListBucketVersions @", "s3:GetObjectVersion @/*", "s3:RestoreObject @/*"},
			RoleID(RestoreCopier): {"s3:ListBucket @", "s3:GetObjectVersion @/*", "s3:GetObjectVersionTagging @/*", "s3:GetObjectTagging @/*"},
		}
		var roles []string
		for id := range s.resourcesOfType("AWS::IAM::Role") {
			roles = append(roles, id)
		}
		if len(roles) < len(Functions)+3 {
			t.Fatalf("roles %v", roles)
		}
		for _, role := range roles {
			stmts := s.statements(t, role)
			for _, d := range []struct{ name, arn string }{{"dr", drArn}, {"vault", vaultArn}} {
				var want []string
				for _, line := range mirrored[role] {
					want = append(want, "Allow "+strings.ReplaceAll(line, "@", d.arn))
				}
				on := func(a string) bool { return true }
				got := slices.DeleteFunc(grants(stmts, on), func(l string) bool { return !strings.Contains(l, d.arn) })
				equalLines(t, role+" grants on "+d.name, got, want)
				// The mirror: the same lines as on the backup bucket.
				onBackup := slices.DeleteFunc(grants(stmts, on), func(l string) bool { return !strings.Contains(l, "arn:aws:s3:::"+testBackup) })
				for i := range onBackup {
					onBackup[i] = strings.ReplaceAll(onBackup[i], "arn:aws:s3:::"+testBackup, d.arn)
				}
				if mirrored[role] != nil {
					equalLines(t, role+" grants on "+d.name+" against the backup bucket's", got, onBackup)
				}
			}
			var wantSecret []string
			if mirrored[role] != nil {
				wantSecret = []string{"Allow secretsmanager:GetSecretValue " + testSecret}
			}
			equalLines(t, role+" Secrets Manager grants", grants(stmts, func(a string) bool { return strings.HasPrefix(a, "secretsmanager:") }), wantSecret)
			for _, st := range stmts {
				for _, r := range st.Resource {
					if strings.Contains(r, testOffsite) || strings.Contains(r, "example.com") {
						t.Errorf("%s has a grant on %s: another provider's bucket is reached with its own credentials", role, r)
					}
				}
			}
		}
	})

	// The other account's bucket policy, to copy: each role allowed exactly its grants.
	t.Run("OtherAccountBucketPolicy", func(t *testing.T) {
		out, _ := s.json["Outputs"].(map[string]any)["DestinationVaultBucketPolicy"].(map[string]any)
		if out == nil {
			t.Fatal("no DestinationVaultBucketPolicy output")
		}
		v, err := s.resolver.Resolve(out["Value"])
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Version   string
			Statement []struct {
				policydoc.Statement
				Principal any
			}
		}
		if err := json.Unmarshal([]byte(v), &doc); err != nil {
			t.Fatalf("%v: %s", err, v)
		}
		// Each Allow as "<principal> Allow <action> <resource>": each role exactly its grants.
		var lines []string
		denies := 0
		for _, st := range doc.Statement {
			if st.Effect == "Deny" {
				denies++
				if jsonOf(st.Principal) != `"*"` || !slices.Equal(st.Action, []string{"s3:*"}) || !slices.Equal(st.Resource, []string{vaultArn, vaultArn + "/*"}) || jsonOf(st.Condition) != `{"Bool":{"aws:SecureTransport":"false"}}` {
					t.Errorf("deny statement %+v, want the TLS-only one", st)
				}
				continue
			}
			for _, a := range st.Action {
				for _, r := range st.Resource {
					lines = append(lines, jsonOf(st.Principal)+" "+st.Effect+" "+a+" "+r)
				}
			}
		}
		slices.Sort(lines)
		var want []string
		for _, fn := range testDestinationFunctions {
			for _, l := range grants(s.statements(t, RoleID(fn)), isS3) {
				if strings.Contains(l, vaultArn) {
					want = append(want, jsonOf(obj("AWS", "arn:test:"+RoleID(fn)+".Arn"))+" "+l)
				}
			}
		}
		equalLines(t, "other account's bucket policy grants", lines, want)
		if doc.Version != "2012-10-17" || denies != 1 || len(want) == 0 {
			t.Errorf("bucket policy version %q, %d deny statements, %d grants", doc.Version, denies, len(want))
		}
		if _, ok := s.json["Outputs"].(map[string]any)["DestinationDrBucketPolicy"]; ok {
			t.Error("a bucket policy output for a bucket of this account")
		}
	})

	// A filtered deployment: the filters reach the lister only, and the source's tags are
	// read only by the lister (tag rules) and the copier (the tags a copy keeps).
	t.Run("Filters", func(t *testing.T) {
		for _, fn := range Functions {
			env := s.resource(t, FunctionID(fn))["Properties"].(map[string]any)["Environment"].(map[string]any)["Variables"].(map[string]any)
			f, ok := env["FILTERS"]
			if want := fn == Lister; ok != want || (want && f != testFilters) {
				t.Errorf("%s FILTERS = %v (set: %v), want %v only on the lister", fn, f, ok, testFilters)
			}
		}
		// (The verifier's restore drill compares tags too: its own tests.)
		readsTags := map[string]bool{RoleID(Lister): true, RoleID(Copier): true, RoleID(Reporter): false, RoleID(Planner): false,
			RoleID(RestoreCopier): false, RoleID(Console): false, StateMachineRoleID: false, RestoreStateMachineRoleID: false}
		for id := range s.resourcesOfType("AWS::IAM::Role") {
			stmts := s.statements(t, id)
			reads := policydoc.Allows(stmts, "s3:GetObjectTagging", "arn:aws:s3:::"+testSource+"/*")
			if want, ok := readsTags[id]; ok && reads != want {
				t.Errorf("%s may read the source's tags: %v, want %v", id, reads, want)
			}
			// On a destination only the restore copier reads tags: a version's, restoring from it.
			for _, d := range []string{drArn, vaultArn} {
				if got, want := policydoc.Allows(stmts, "s3:GetObjectTagging", d+"/*"), id == RoleID(RestoreCopier); got != want {
					t.Errorf("%s may read tags on %s: %v, want %v", id, d, got, want)
				}
			}
		}
	})

	t.Run("NoWildcards", func(t *testing.T) {
		checkNoWildcards(t, s)
	})
}

// TestDestinationsWithoutAccount: synthesis as the CDK CLI does it offline (no account, no
// Region): the created destination's stack is in its Region, and both stacks name its bucket
// with the account they are deployed in, so no cross-Region reference is needed.
func TestDestinationsWithoutAccount(t *testing.T) {
	dir := t.TempDir()
	if err := WritePlaceholderAssets(dir); err != nil {
		t.Fatal(err)
	}
	app := newApp(t, map[string]any{"sourceBucketName": testSource, "assetDir": dir, "destinations": `[{"name":"dr","region":"` + testDRRegion + `"}]`})
	props, err := PropsFromContext(app.Node())
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewBackupStack(app, "BucketVault", props)
	if err != nil {
		t.Fatal(err)
	}
	asm := app.Synth(nil)
	dst := asm.GetStackByName(jsii.String("BucketVault-dr"))
	if got := *dst.Environment().Region; got != testDRRegion {
		t.Errorf("destination stack Region %s, want %s", got, testDRRegion)
	}
	name := obj("Fn::Join", []any{"", []any{"bucketvault-dr-", ref("AWS::AccountId"), "-" + testDRRegion}})
	bucket := dst.Template().(map[string]any)["Resources"].(map[string]any)[DestinationBucketID].(map[string]any)
	if got := jsonOf(bucket["Properties"].(map[string]any)["BucketName"]); got != jsonOf(name) {
		t.Errorf("destination bucket name %s, want %s", got, jsonOf(name))
	}
	js, _ := json.Marshal(asm.GetStackByName(jsii.String("BucketVault")).Template())
	if !strings.Contains(string(js), `bucketvault-dr-",{"Ref":"AWS::AccountId"},"-`+testDRRegion+`"`) {
		t.Errorf("the backup stack does not name the destination bucket with its account: %.300s", js)
	}
	if strings.Contains(string(js), "Fn::ImportValue") || strings.Contains(string(js), "ExportsReader") {
		t.Error("the backup stack refers to the destination stack")
	}
	if len(s.Destinations) != 1 {
		t.Errorf("destinations %v", s.Destinations)
	}
}

// TestDestinationSettingsRefused: a destinations setting that cannot work is refused at synth,
// naming the entry and the field.
func TestDestinationSettingsRefused(t *testing.T) {
	secret := testSecret
	for _, tc := range []struct {
		name, destinations, want string
	}{
		{"NotArray", `{"name":"dr"}`, "destinations: want a JSON array"},
		{"DuplicateName", `[{"name":"dr","region":"eu-west-1"},{"name":"dr","region":"eu-west-2"}]`, `destination 1: name "dr" is taken`},
		{"Primary", `[{"name":"primary","region":"eu-west-1"}]`, `destination 0: name "primary" is taken`},
		{"BadName", `[{"name":"DR","region":"eu-west-1"}]`, `destination 0: name "DR" must be 1 to 32 lower-case letters`},
		{"KMS", `[{"name":"dr","region":"eu-west-1","kms":true}]`, "destinations: destination 0: kms: a KMS-encrypted destination is not supported yet"},
		{"KMSKey", `[{"name":"dr","region":"eu-west-1","kmsKeyArn":"arn:aws:kms:eu-west-1:123456789012:key/x"}]`, "destination 0: kmsKeyArn: a KMS-encrypted destination is not supported yet"},
		{"UnknownField", `[{"name":"dr","region":"eu-west-1","versioned":false}]`, `destination 0: unknown field "versioned"`},
		{"RuntimeCredentialsField", `[{"name":"o","bucket":"b-1","endpoint":"https://s3.example.com","credentials":"env:X"}]`, `destination 0: unknown field "credentials"`},
		{"WrongType", `[{"name":"dr","region":1}]`, "destinations: json: cannot unmarshal number"},
		{"CreatedWithoutRegion", `[{"name":"dr"}]`, `destination 0 ("dr"): region: required`},
		{"NotARegion", `[{"name":"dr","region":"europe"}]`, `destination 0 ("dr"): region "europe" is not an AWS Region`},
		{"CreatedInOtherAccount", `[{"name":"dr","region":"eu-west-1","account":"111122223333"}]`, `destination 0 ("dr"): account: the app creates`},
		{"BadAccount", `[{"name":"v","bucket":"vault-1","account":"1111"}]`, `destination 0 ("v"): account "1111"`},
		{"BadBucket", `[{"name":"v","bucket":"Vault_1"}]`, `destination 0 ("v"): bucket "Vault_1" is not a valid bucket name`},
		{"SourceBucket", `[{"name":"v","bucket":"ok-bucket"}]`, `destination "v": bucket "ok-bucket" is already the source`},
		{"EndpointWithoutSecret", `[{"name":"o","bucket":"b-1","endpoint":"https://s3.example.com"}]`, `destination 0 ("o"): endpoint, credentialsSecret and bucket`},
		{"PartialSecretArn", `[{"name":"o","bucket":"b-1","endpoint":"https://s3.example.com","credentialsSecret":"arn:aws:secretsmanager:us-east-1:123456789012:secret:offsite"}]`, `credentialsSecret "arn:aws:secretsmanager:us-east-1:123456789012:secret:offsite": want the complete ARN`},
		{"PlainHTTP", `[{"name":"o","bucket":"b-1","endpoint":"http://s3.example.com","credentialsSecret":"` + secret + `"}]`, `destination "o": endpoint "http://s3.example.com" is plain http`},
		{"TooMany", `[{"name":"a","region":"eu-west-1"},{"name":"b","region":"eu-west-1"},{"name":"c","region":"eu-west-1"},{"name":"d","region":"eu-west-1"}]`, "names 4 destinations; at most 3"},
		{"NameTooLong", `[{"name":"a-very-long-destination-name-xyz","region":"ap-southeast-2"}]`, "would have 72 characters, S3 allows 63: shorten name or namePrefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := map[string]any{"sourceBucketName": "ok-bucket", "destinations": tc.destinations}
			_, err := PropsFromContext(awscdk.NewApp(&awscdk.AppProps{Context: &ctx}).Node())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("destinations %s: error %v, want one containing %q", tc.destinations, err, tc.want)
			}
		})
	}
	// And the three kinds are accepted.
	ctx := map[string]any{"sourceBucketName": "ok-bucket", "destinations": testDestinations}
	p, err := PropsFromContext(awscdk.NewApp(&awscdk.AppProps{Context: &ctx}).Node())
	if err != nil {
		t.Fatal(err)
	}
	ds, err := p.destinationSettings()
	var kinds []string
	for _, d := range ds {
		kinds = append(kinds, d.Kind())
	}
	if err != nil || !slices.Equal(kinds, []string{DestinationCreated, DestinationImported, DestinationOtherProvider}) {
		t.Errorf("kinds %v (%v)", kinds, err)
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
