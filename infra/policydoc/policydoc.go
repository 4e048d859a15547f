// Package policydoc reads the IAM policy statements of one role out of a synthesized
// CloudFormation template and resolves their intrinsic functions to plain strings, so that tests
// can check them for wildcards and hand them, bucket names mapped, to an S3-compatible server.
package policydoc

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Statement is one IAM policy statement with every value resolved. Action and Resource are
// always lists, whether the template wrote a string or a list.
type Statement struct {
	Sid       string         `json:"Sid,omitempty"`
	Effect    string         `json:"Effect"`
	Action    []string       `json:"Action"`
	Resource  []string       `json:"Resource"`
	Condition map[string]any `json:"Condition,omitempty"`
}

// Document is an IAM policy document.
type Document struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Resolver turns CloudFormation intrinsics into strings: {"Ref": X} is Refs[X] (pseudo
// parameters such as AWS::Partition included), {"Fn::GetAtt": [X, A]} is Attrs["X.A"],
// {"Fn::Join": [sep, parts]} joins the resolved parts. Anything else is an error naming it.
type Resolver struct {
	Refs  map[string]string
	Attrs map[string]string
}

// ResolverFor returns a Resolver for template in which every resource resolves to a
// placeholder ("Ref" to "ref:<id>", "Fn::GetAtt" to "arn:test:<id>.<attribute>") and the pseudo
// parameters to the given partition, Region and account. Set Refs and Attrs entries to map the
// resources that matter (buckets) to real values.
func ResolverFor(template map[string]any, partition, region, account string) Resolver {
	r := Resolver{
		Refs: map[string]string{
			"AWS::Partition": partition, "AWS::Region": region, "AWS::AccountId": account,
			"AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "test-stack",
		},
		Attrs: map[string]string{},
	}
	resources, _ := template["Resources"].(map[string]any)
	for id := range resources {
		r.Refs[id] = "ref:" + id
		for _, attr := range []string{"Arn", "Name"} {
			r.Attrs[id+"."+attr] = "arn:test:" + id + "." + attr
		}
	}
	return r
}

// SetBucket maps the bucket with logical id id to name: its Ref and its Arn.
func (r Resolver) SetBucket(id, name string) {
	r.Refs[id] = name
	r.Attrs[id+".Arn"] = "arn:aws:s3:::" + name
}

// Resolve returns v as a string.
func (r Resolver) Resolve(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case map[string]any:
		if len(x) != 1 {
			return "", fmt.Errorf("not an intrinsic function: %v", x)
		}
		for fn, arg := range x {
			switch fn {
			case "Ref":
				name, _ := arg.(string)
				s, ok := r.Refs[name]
				if !ok {
					return "", fmt.Errorf("no value for Ref %s", name)
				}
				return s, nil
			case "Fn::GetAtt":
				parts, _ := arg.([]any)
				if len(parts) != 2 {
					return "", fmt.Errorf("Fn::GetAtt: want [resource, attribute], got %v", arg)
				}
				key := fmt.Sprintf("%v.%v", parts[0], parts[1])
				s, ok := r.Attrs[key]
				if !ok {
					return "", fmt.Errorf("no value for Fn::GetAtt %s", key)
				}
				return s, nil
			case "Fn::Join":
				parts, _ := arg.([]any)
				if len(parts) != 2 {
					return "", fmt.Errorf("Fn::Join: want [separator, list], got %v", arg)
				}
				sep, _ := parts[0].(string)
				list, _ := parts[1].([]any)
				out := make([]string, 0, len(list))
				for _, p := range list {
					s, err := r.Resolve(p)
					if err != nil {
						return "", err
					}
					out = append(out, s)
				}
				return strings.Join(out, sep), nil
			default:
				return "", fmt.Errorf("unsupported intrinsic function %s", fn)
			}
		}
	}
	return "", fmt.Errorf("cannot resolve %T %v", v, v)
}

// RawStatements returns the statements that grant rights to the role with logical id roleID,
// unresolved: the role's own inline policies and every AWS::IAM::Policy attached to it.
func RawStatements(template map[string]any, roleID string) ([]map[string]any, error) {
	resources, _ := template["Resources"].(map[string]any)
	role, _ := resources[roleID].(map[string]any)
	if role == nil || role["Type"] != "AWS::IAM::Role" {
		return nil, fmt.Errorf("template has no AWS::IAM::Role %s", roleID)
	}
	var docs []any
	if props, _ := role["Properties"].(map[string]any); props != nil {
		if managed, ok := props["ManagedPolicyArns"]; ok {
			return nil, fmt.Errorf("role %s has managed policies %v: their statements are not in the template", roleID, managed)
		}
		policies, _ := props["Policies"].([]any)
		for _, p := range policies {
			pm, _ := p.(map[string]any)
			docs = append(docs, pm["PolicyDocument"])
		}
	}
	ids := make([]string, 0, len(resources))
	for id := range resources {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		res, _ := resources[id].(map[string]any)
		if res["Type"] != "AWS::IAM::Policy" {
			continue
		}
		props, _ := res["Properties"].(map[string]any)
		roles, _ := props["Roles"].([]any)
		for _, ref := range roles {
			if rm, _ := ref.(map[string]any); rm != nil && rm["Ref"] == roleID {
				docs = append(docs, props["PolicyDocument"])
			}
		}
	}
	var out []map[string]any
	for _, d := range docs {
		dm, _ := d.(map[string]any)
		stmts, _ := dm["Statement"].([]any)
		for _, s := range stmts {
			sm, ok := s.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("role %s: statement is not an object: %v", roleID, s)
			}
			out = append(out, sm)
		}
	}
	return out, nil
}

// Statements returns the role's statements with every value resolved.
func Statements(template map[string]any, roleID string, r Resolver) ([]Statement, error) {
	raw, err := RawStatements(template, roleID)
	if err != nil {
		return nil, err
	}
	out := make([]Statement, 0, len(raw))
	for _, s := range raw {
		st := Statement{}
		st.Sid, _ = s["Sid"].(string)
		st.Effect, _ = s["Effect"].(string)
		for _, k := range []string{"NotAction", "NotResource", "Principal", "NotPrincipal"} {
			if _, ok := s[k]; ok {
				return nil, fmt.Errorf("role %s: statement uses %s, which this package does not model", roleID, k)
			}
		}
		if st.Action, err = stringList(s["Action"], Resolver{}); err != nil {
			return nil, fmt.Errorf("role %s: Action: %w", roleID, err)
		}
		if st.Resource, err = stringList(s["Resource"], r); err != nil {
			return nil, fmt.Errorf("role %s: Resource: %w", roleID, err)
		}
		if c, ok := s["Condition"].(map[string]any); ok {
			st.Condition = c
		}
		out = append(out, st)
	}
	return out, nil
}

func stringList(v any, r Resolver) ([]string, error) {
	if list, ok := v.([]any); ok {
		out := make([]string, 0, len(list))
		for _, e := range list {
			s, err := r.Resolve(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	if v == nil {
		return nil, fmt.Errorf("missing")
	}
	s, err := r.Resolve(v)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

// S3Only keeps the statements whose actions are all S3 actions; a statement that mixes S3 and
// other services' actions is an error (the stack never writes one).
func S3Only(stmts []Statement) ([]Statement, error) {
	var out []Statement
	for _, s := range stmts {
		s3 := 0
		for _, a := range s.Action {
			if strings.HasPrefix(a, "s3:") {
				s3++
			}
		}
		switch {
		case s3 == len(s.Action):
			out = append(out, s)
		case s3 > 0:
			return nil, fmt.Errorf("statement %q mixes S3 and other actions: %v", s.Sid, s.Action)
		}
	}
	return out, nil
}

// Wildcards returns a description of every wildcard grant: an action containing "*" anywhere,
// and an S3 action granted on a resource "*" (or on "arn:aws:s3:::*"). Other services' actions
// on "*" are allowed: CloudWatch Logs delivery and X-Ray support no narrower resource.
func Wildcards(stmts []Statement) []string {
	var out []string
	for _, s := range stmts {
		if s.Effect != "Allow" {
			continue
		}
		s3 := false
		for _, a := range s.Action {
			if strings.Contains(a, "*") {
				out = append(out, fmt.Sprintf("statement %q: wildcard action %s", s.Sid, a))
			}
			if strings.HasPrefix(a, "s3:") {
				s3 = true
			}
		}
		if !s3 {
			continue
		}
		for _, res := range s.Resource {
			if res == "*" || strings.HasPrefix(res, "arn:aws:s3:::*") {
				out = append(out, fmt.Sprintf("statement %q: S3 actions %v on resource %s", s.Sid, s.Action, res))
			}
		}
	}
	return out
}

// Allows reports whether some Allow statement names action on exactly resource.
func Allows(stmts []Statement, action, resource string) bool {
	for _, s := range stmts {
		if s.Effect == "Allow" && slices.Contains(s.Action, action) && slices.Contains(s.Resource, resource) {
			return true
		}
	}
	return false
}

// Actions returns every action the statements allow, sorted, without duplicates.
func Actions(stmts []Statement) []string {
	seen := map[string]bool{}
	for _, s := range stmts {
		if s.Effect != "Allow" {
			continue
		}
		for _, a := range s.Action {
			seen[a] = true
		}
	}
	out := make([]string, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// JSON returns the statements as a policy document.
func JSON(stmts []Statement) ([]byte, error) {
	return json.MarshalIndent(Document{Version: "2012-10-17", Statement: stmts}, "", "  ")
}
