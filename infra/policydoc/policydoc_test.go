package policydoc

import (
	"encoding/json"
	"strings"
	"testing"
)

const template = `{"Resources": {
  "Bucket": {"Type": "AWS::S3::Bucket"},
  "Role": {"Type": "AWS::IAM::Role", "Properties": {"Policies": [{"PolicyDocument": {"Statement": [
    {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject",
     "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket", "Arn"]}, "/runs/*"]]}},
    {"Sid": "List", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": {"Fn::GetAtt": ["Bucket", "Arn"]},
     "Condition": {"StringLike": {"s3:prefix": ["runs/*"]}}}
  ]}}]}},
  "Extra": {"Type": "AWS::IAM::Policy", "Properties": {"Roles": [{"Ref": "Role"}], "PolicyDocument": {"Statement": [
    {"Effect": "Allow", "Action": ["xray:PutTraceSegments"], "Resource": "*"},
    {"Effect": "Allow", "Action": "s3:PutObject",
     "Resource": {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::source/*"]]}}
  ]}}},
  "Other": {"Type": "AWS::IAM::Policy", "Properties": {"Roles": [{"Ref": "SomeoneElse"}], "PolicyDocument": {"Statement": [
    {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
  ]}}}
}}`

func load(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(template), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestStatementsResolveAndCollect(t *testing.T) {
	tpl := load(t)
	r := ResolverFor(tpl, "aws", "us-east-1", "123456789012")
	r.SetBucket("Bucket", "runs-bucket")
	st, err := Statements(tpl, "Role", r)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 4 {
		t.Fatalf("%d statements, want the role's 2 and the attached policy's 2 (not the other role's): %+v", len(st), st)
	}
	if !Allows(st, "s3:GetObject", "arn:aws:s3:::runs-bucket/runs/*") || !Allows(st, "s3:PutObject", "arn:aws:s3:::source/*") {
		t.Errorf("resolved statements: %+v", st)
	}
	if st[1].Condition == nil {
		t.Error("condition lost")
	}
	s3, err := S3Only(st)
	if err != nil || len(s3) != 3 {
		t.Errorf("S3Only: %d statements, %v; want 3", len(s3), err)
	}
	if w := Wildcards(st); len(w) != 0 {
		t.Errorf("wildcards reported for X-Ray on *: %v", w)
	}
	doc, err := JSON(s3)
	if err != nil || !strings.Contains(string(doc), `"Version": "2012-10-17"`) {
		t.Errorf("JSON: %s %v", doc, err)
	}
}

func TestWildcards(t *testing.T) {
	for _, tc := range []struct {
		st   Statement
		want int
	}{
		{Statement{Effect: "Allow", Action: []string{"s3:*"}, Resource: []string{"arn:aws:s3:::b"}}, 1},
		{Statement{Effect: "Allow", Action: []string{"s3:Get*"}, Resource: []string{"arn:aws:s3:::b/*"}}, 1},
		{Statement{Effect: "Allow", Action: []string{"s3:GetObject"}, Resource: []string{"*"}}, 1},
		{Statement{Effect: "Allow", Action: []string{"s3:GetObject"}, Resource: []string{"arn:aws:s3:::*"}}, 1},
		{Statement{Effect: "Allow", Action: []string{"logs:PutLogEvents"}, Resource: []string{"*"}}, 0},
		{Statement{Effect: "Deny", Action: []string{"s3:*"}, Resource: []string{"*"}}, 0},
		{Statement{Effect: "Allow", Action: []string{"s3:GetObject"}, Resource: []string{"arn:aws:s3:::b/runs/*"}}, 0},
	} {
		if got := Wildcards([]Statement{tc.st}); len(got) != tc.want {
			t.Errorf("%+v: %v, want %d findings", tc.st, got, tc.want)
		}
	}
}

func TestUnresolvableIsAnError(t *testing.T) {
	tpl := load(t)
	if _, err := Statements(tpl, "Role", Resolver{Refs: map[string]string{}, Attrs: map[string]string{}}); err == nil {
		t.Error("no error for an unresolvable Fn::GetAtt")
	}
	if _, err := Statements(tpl, "Missing", Resolver{}); err == nil {
		t.Error("no error for a missing role")
	}
	if _, err := S3Only([]Statement{{Effect: "Allow", Action: []string{"s3:GetObject", "kms:Decrypt"}}}); err == nil {
		t.Error("no error for a statement mixing S3 and KMS")
	}
}
