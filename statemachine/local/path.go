package local

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// path is a JSONPath of the subset the executor implements: "$" or "$$", then dotted names,
// ['quoted names'] and [N] literal indexes. Every such path selects at most one node, so the
// same type serves Paths and Reference Paths.
type path struct {
	src  string
	ctx  bool // starts with $$: evaluated on the context object
	segs []segment
}

type segment struct {
	name  string
	index int
	isIdx bool
}

// pathError explains why a path string was refused; unsupported marks JSONPath features the
// executor does not implement (as opposed to malformed paths).
type pathError struct {
	msg         string
	unsupported bool
}

func (e *pathError) Error() string { return e.msg }

func parsePath(s string) (*path, error) {
	p := &path{src: s}
	var rest string
	switch {
	case strings.HasPrefix(s, "$$"):
		p.ctx, rest = true, s[2:]
	case strings.HasPrefix(s, "$"):
		rest = s[1:]
	default:
		return nil, &pathError{msg: fmt.Sprintf("JSONPath %q must start with $", s)}
	}
	unsupported := func(what string) error {
		return &pathError{msg: fmt.Sprintf("JSONPath %q uses %s, which is not implemented by the local executor", s, what), unsupported: true}
	}
	bad := func(why string) error { return &pathError{msg: fmt.Sprintf("invalid JSONPath %q: %s", s, why)} }
	for rest != "" {
		switch rest[0] {
		case '.':
			if strings.HasPrefix(rest, "..") {
				return nil, unsupported("recursive descent (..)")
			}
			rest = rest[1:]
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			name := rest[:end]
			rest = rest[end:]
			switch {
			case name == "":
				return nil, bad("empty name")
			case name == "*":
				return nil, unsupported("a wildcard (*)")
			case strings.ContainsAny(name, "*?@,:()'\"] \t\n"):
				return nil, bad(fmt.Sprintf("name %q contains a character that needs bracket notation", name))
			}
			p.segs = append(p.segs, segment{name: name})
		case '[':
			if len(rest) > 1 && (rest[1] == '\'' || rest[1] == '"') {
				q := rest[1]
				end := strings.IndexByte(rest[2:], q)
				if end < 0 || len(rest) < end+4 || rest[end+3] != ']' {
					return nil, bad("unterminated quoted name")
				}
				p.segs = append(p.segs, segment{name: rest[2 : 2+end]})
				rest = rest[end+4:]
				continue
			}
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, bad("missing ]")
			}
			in := rest[1:end]
			rest = rest[end+1:]
			switch {
			case in == "*":
				return nil, unsupported("a wildcard ([*])")
			case strings.HasPrefix(in, "?"):
				return nil, unsupported("a filter expression")
			case strings.Contains(in, ":"):
				return nil, unsupported("an array slice")
			case strings.Contains(in, ","):
				return nil, unsupported("a union")
			case strings.HasPrefix(in, "("):
				return nil, unsupported("a script expression")
			}
			n, err := strconv.Atoi(in)
			if err != nil || n < 0 || in != strconv.Itoa(n) {
				if strings.HasPrefix(in, "-") {
					return nil, unsupported("a negative index")
				}
				return nil, bad(fmt.Sprintf("index %q is not a non-negative integer", in))
			}
			p.segs = append(p.segs, segment{index: n, isIdx: true})
		default:
			return nil, bad(fmt.Sprintf("unexpected %q", rest[:1]))
		}
	}
	return p, nil
}

// get returns the node the path selects in v and whether it exists.
func (p *path) get(v any) (any, bool) {
	for _, s := range p.segs {
		if s.isIdx {
			a, ok := v.([]any)
			if !ok || s.index >= len(a) {
				return nil, false
			}
			v = a[s.index]
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[s.name]; !ok {
			return nil, false
		}
	}
	return v, true
}

// normalized renders the path as AWS does in its "No results for path" messages: $['a'][0].
func (p *path) normalized() string {
	var b strings.Builder
	b.WriteString("$")
	if p.ctx {
		b.WriteString("$")
	}
	for _, s := range p.segs {
		if s.isIdx {
			fmt.Fprintf(&b, "[%d]", s.index)
		} else {
			fmt.Fprintf(&b, "['%s']", s.name)
		}
	}
	return b.String()
}

// set returns a copy of root with val stored at the path, creating missing objects on the
// way. Objects along the path are copied; everything else is shared.
func (p *path) set(root, val any) (any, error) {
	return setSegs(root, p.segs, val, p.src)
}

func setSegs(node any, segs []segment, val any, src string) (any, error) {
	if len(segs) == 0 {
		return val, nil
	}
	s := segs[0]
	if s.isIdx {
		a, ok := node.([]any)
		if !ok || s.index >= len(a) {
			return nil, fmt.Errorf("Unable to apply ReferencePath %s to input %s", src, jsonText(node))
		}
		child, err := setSegs(a[s.index], segs[1:], val, src)
		if err != nil {
			return nil, err
		}
		out := append([]any(nil), a...)
		out[s.index] = child
		return out, nil
	}
	var m map[string]any
	switch n := node.(type) {
	case map[string]any:
		m = n
	case nil:
		// A missing (or null) intermediate node becomes a new object.
	default:
		return nil, fmt.Errorf("Unable to apply ReferencePath %s to input %s", src, jsonText(node))
	}
	child, err := setSegs(m[s.name], segs[1:], val, src)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	out[s.name] = child
	return out, nil
}

// tmpl is a compiled payload template (Parameters, ResultSelector, ItemSelector, and the
// Parameters of ItemReader and ResultWriter).
type tmpl struct {
	lit   any // constant subtree (no .$ keys below)
	isLit bool
	keys  []string // object: output keys, sorted
	vals  []*tmpl
	elems []*tmpl // array
	isArr bool
	path  *path  // a "key.$" value
	field string // the original "key.$" name, for error causes
}

// compileTemplate compiles a template value. where/field locate it for errors.
func compileTemplate(v any, where, field string) (*tmpl, error) {
	switch x := v.(type) {
	case map[string]any:
		t := &tmpl{}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		seen := map[string]bool{}
		dynamic := false
		for _, k := range keys {
			sub := field + "." + k
			if field == "" {
				sub = k
			}
			out := k
			var c *tmpl
			if strings.HasSuffix(k, ".$") {
				out = strings.TrimSuffix(k, ".$")
				s, ok := x[k].(string)
				if !ok {
					return nil, invalid(where, sub, "the value of a field ending in .$ must be a string, got %s", typeName(x[k]))
				}
				if !strings.HasPrefix(s, "$") {
					name, _, _ := strings.Cut(s, "(")
					if strings.HasPrefix(s, "States.") {
						return nil, &DefinitionError{Where: where, Field: sub, Msg: fmt.Sprintf("field %q: intrinsic function %q is not implemented by the local executor", sub, strings.TrimSpace(name))}
					}
					return nil, invalid(where, sub, "%q is neither a JSONPath nor an intrinsic function", s)
				}
				p, err := parsePath(s)
				if err != nil {
					return nil, pathErr(where, sub, err)
				}
				c = &tmpl{path: p, field: k}
				dynamic = true
			} else {
				var err error
				if c, err = compileTemplate(x[k], where, sub); err != nil {
					return nil, err
				}
				dynamic = dynamic || !c.isLit
			}
			if seen[out] {
				return nil, invalid(where, sub, "both %q and %q are set", out, out+".$")
			}
			seen[out] = true
			t.keys = append(t.keys, out)
			t.vals = append(t.vals, c)
		}
		if !dynamic {
			return &tmpl{lit: x, isLit: true}, nil
		}
		return t, nil
	case []any:
		t := &tmpl{isArr: true}
		dynamic := false
		for i, e := range x {
			c, err := compileTemplate(e, where, fmt.Sprintf("%s[%d]", field, i))
			if err != nil {
				return nil, err
			}
			dynamic = dynamic || !c.isLit
			t.elems = append(t.elems, c)
		}
		if !dynamic {
			return &tmpl{lit: x, isLit: true}, nil
		}
		return t, nil
	}
	return &tmpl{lit: v, isLit: true}, nil
}

// pathMiss reports a template path that selected nothing.
type pathMiss struct {
	path  *path
	field string
	input any
}

func (m *pathMiss) cause() string {
	return fmt.Sprintf("The JSONPath '%s' specified for the field '%s' could not be found in the input '%s'", m.path.src, m.field, jsonText(m.input))
}

// eval builds the template's value: "$" paths read input, "$$" paths read the context object.
func (t *tmpl) eval(input any, ctxObj func() any) (any, *pathMiss) {
	switch {
	case t.isLit:
		return t.lit, nil
	case t.path != nil:
		src := input
		if t.path.ctx {
			src = ctxObj()
		}
		v, ok := t.path.get(src)
		if !ok {
			return nil, &pathMiss{path: t.path, field: t.field, input: src}
		}
		return v, nil
	case t.isArr:
		out := make([]any, len(t.elems))
		for i, e := range t.elems {
			v, miss := e.eval(input, ctxObj)
			if miss != nil {
				return nil, miss
			}
			out[i] = v
		}
		return out, nil
	}
	out := make(map[string]any, len(t.keys))
	for i, k := range t.keys {
		v, miss := t.vals[i].eval(input, ctxObj)
		if miss != nil {
			return nil, miss
		}
		out[k] = v
	}
	return out, nil
}

// topKeys lists the output keys of an object template ("FunctionName" for "FunctionName.$").
func (t *tmpl) topKeys() []string {
	if t.isLit {
		m, _ := t.lit.(map[string]any)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys
	}
	return t.keys
}

// staticString returns the literal string value of top-level key k, if it is one.
func (t *tmpl) staticString(k string) (string, bool) {
	if t.isLit {
		m, _ := t.lit.(map[string]any)
		s, ok := m[k].(string)
		return s, ok
	}
	for i, key := range t.keys {
		if key == k && t.vals[i].isLit {
			s, ok := t.vals[i].lit.(string)
			return s, ok
		}
	}
	return "", false
}
