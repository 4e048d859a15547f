package local

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		in          string
		normalized  string
		unsupported bool // refused as an unimplemented JSONPath feature
		invalid     bool // refused as malformed
	}{
		{in: "$", normalized: "$"},
		{in: "$$", normalized: "$$"},
		{in: "$.a.b", normalized: "$['a']['b']"},
		{in: "$['a b'].c", normalized: "$['a b']['c']"},
		{in: `$["x"]`, normalized: "$['x']"},
		{in: "$.items[2].Key", normalized: "$['items'][2]['Key']"},
		{in: "$$.Map.Item.Value", normalized: "$$['Map']['Item']['Value']"},
		{in: "$.detail-type", normalized: "$['detail-type']"},
		{in: "$.a[*]", unsupported: true},
		{in: "$.*", unsupported: true},
		{in: "$..a", unsupported: true},
		{in: "$.a[?(@.x)]", unsupported: true},
		{in: "$.a[0:2]", unsupported: true},
		{in: "$.a[0,1]", unsupported: true},
		{in: "$.a[-1]", unsupported: true},
		{in: "a.b", invalid: true},
		{in: "$.", invalid: true},
		{in: "$.a[x]", invalid: true},
		{in: "$.a[0", invalid: true},
		{in: "$a", invalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := parsePath(tt.in)
			var pe *pathError
			switch {
			case tt.unsupported || tt.invalid:
				if !errors.As(err, &pe) || pe.unsupported != tt.unsupported {
					t.Fatalf("err = %v, want unsupported=%v", err, tt.unsupported)
				}
				if tt.unsupported && !strings.Contains(err.Error(), "not implemented by the local executor") {
					t.Errorf("message %q does not say it is not implemented", err)
				}
			case err != nil:
				t.Fatal(err)
			case p.normalized() != tt.normalized:
				t.Errorf("normalized %q, want %q", p.normalized(), tt.normalized)
			}
		})
	}
}

func TestPathGet(t *testing.T) {
	doc, _ := decodeJSON([]byte(`{"a":{"b":[10,{"c":null}]},"n":0}`))
	tests := []struct {
		path  string
		want  string // JSON of the node
		found bool
	}{
		{"$", `{"a":{"b":[10,{"c":null}]},"n":0}`, true},
		{"$.a.b[0]", `10`, true}, // a literal index yields the element, not a one-element array
		{"$.a.b[1].c", `null`, true},
		{"$.n", `0`, true},
		{"$.a.b[2]", ``, false},
		{"$.a.x", ``, false},
		{"$.n.x", ``, false},
		{"$.a[0]", ``, false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			p, err := parsePath(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			v, found := p.get(doc)
			if found != tt.found || (found && jsonText(v) != tt.want) {
				t.Errorf("get = %s, %v; want %s, %v", jsonText(v), found, tt.want, tt.found)
			}
		})
	}
}

func TestPathSet(t *testing.T) {
	tests := []struct {
		name, input, path, value, want, err string
	}{
		{name: "root", input: `{"a":1}`, path: "$", value: `{"r":1}`, want: `{"r":1}`},
		{name: "new field beside existing", input: `{"a":1}`, path: "$.r", value: `2`, want: `{"a":1,"r":2}`},
		{name: "creates parents", input: `{"a":1}`, path: "$.x.y.z", value: `true`, want: `{"a":1,"x":{"y":{"z":true}}}`},
		{name: "into existing object", input: `{"x":{"k":1}}`, path: "$.x.y", value: `2`, want: `{"x":{"k":1,"y":2}}`},
		{name: "overwrites", input: `{"x":{"y":1}}`, path: "$.x", value: `"s"`, want: `{"x":"s"}`},
		{name: "array element", input: `{"l":[1,2]}`, path: "$.l[1]", value: `9`, want: `{"l":[1,9]}`},
		{name: "through a string", input: `{"a":"s"}`, path: "$.a.b", value: `1`, err: `Unable to apply ReferencePath $.a.b to input "s"`},
		{name: "index out of range", input: `{"l":[]}`, path: "$.l[0]", value: `1`, err: "Unable to apply ReferencePath $.l[0] to input []"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, _ := decodeJSON([]byte(tt.input))
			val, _ := decodeJSON([]byte(tt.value))
			p, _ := parsePath(tt.path)
			out, err := p.set(in, val)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := jsonText(out); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if jsonText(in) != tt.input {
				t.Errorf("input changed to %s", jsonText(in))
			}
		})
	}
}

func TestTemplate(t *testing.T) {
	ctxObj := func() any {
		v, _ := decodeJSON([]byte(`{"Execution":{"Name":"exec"},"State":{"RetryCount":2}}`))
		return v
	}
	tests := []struct {
		name, template, input, want, cause string
	}{
		{name: "literal", template: `{"a":1,"b":[1,{"c":"$.x"}]}`, input: `{}`, want: `{"a":1,"b":[1,{"c":"$.x"}]}`},
		{name: "paths at depth and suffix stripped", template: `{"a.$":"$.x","n":{"m.$":"$.y[1]","k":"lit"}}`, input: `{"x":"X","y":[0,"Y"]}`,
			want: `{"a":"X","n":{"k":"lit","m":"Y"}}`},
		{name: "inside arrays", template: `{"l":[{"v.$":"$.x"},"s",{"w":{"z.$":"$"}}]}`, input: `{"x":1}`,
			want: `{"l":[{"v":1},"s",{"w":{"z":{"x":1}}}]}`},
		{name: "context object", template: `{"e.$":"$$.Execution.Name","r.$":"$$.State.RetryCount"}`, input: `{}`, want: `{"e":"exec","r":2}`},
		{name: "null value selected", template: `{"a.$":"$.n"}`, input: `{"n":null}`, want: `{"a":null}`},
		{name: "missing path", template: `{"p":{"a.$":"$.missing"}}`, input: `{"x":1}`,
			cause: `The JSONPath '$.missing' specified for the field 'a.$' could not be found in the input '{"x":1}'`},
		{name: "missing context path", template: `{"a.$":"$$.Nope"}`, input: `{}`,
			cause: `The JSONPath '$$.Nope' specified for the field 'a.$' could not be found in the input '{"Execution":{"Name":"exec"},"State":{"RetryCount":2}}'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tv, _ := decodeJSON([]byte(tt.template))
			c, err := compileTemplate(tv, "state \"S\"", "Parameters")
			if err != nil {
				t.Fatal(err)
			}
			in, _ := decodeJSON([]byte(tt.input))
			out, miss := c.eval(in, ctxObj)
			if tt.cause != "" {
				if miss == nil || miss.cause() != tt.cause {
					t.Fatalf("miss = %v, want cause %q", miss, tt.cause)
				}
				return
			}
			if miss != nil {
				t.Fatal(miss.cause())
			}
			if got := jsonText(out); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}
