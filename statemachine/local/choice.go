package local

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"unicode/utf16"
)

// rule is a compiled Choice rule: a boolean combination (And, Or, Not) or a comparison of the
// Variable with a literal or with the value at a …Path operand.
type rule struct {
	and, or     []*rule
	not         *rule
	variable    *path
	op          string // operator without the Path suffix: "StringEquals", "IsNull", …
	operand     any
	operandPath *path
	next        string
}

// operand kinds of the comparison operators.
var choiceOps = map[string]string{
	"StringEquals": "string", "StringLessThan": "string", "StringGreaterThan": "string",
	"StringLessThanEquals": "string", "StringGreaterThanEquals": "string", "StringMatches": "pattern",
	"NumericEquals": "number", "NumericLessThan": "number", "NumericGreaterThan": "number",
	"NumericLessThanEquals": "number", "NumericGreaterThanEquals": "number",
	"BooleanEquals":   "boolean",
	"TimestampEquals": "timestamp", "TimestampLessThan": "timestamp", "TimestampGreaterThan": "timestamp",
	"TimestampLessThanEquals": "timestamp", "TimestampGreaterThanEquals": "timestamp",
	"IsNull": "test", "IsPresent": "test", "IsNumeric": "test", "IsString": "test", "IsBoolean": "test", "IsTimestamp": "test",
}

// opFields are the rule keys naming an operator, with the …Path variants.
var opFields = func() []string {
	var fs []string
	for op, kind := range choiceOps {
		fs = append(fs, op)
		if kind != "pattern" && kind != "test" {
			fs = append(fs, op+"Path")
		}
	}
	return fs
}()

func (st *state) choice(where string, obj map[string]json.RawMessage) error {
	var raws []json.RawMessage
	if err := json.Unmarshal(obj["Choices"], &raws); err != nil || len(raws) == 0 {
		return invalid(where, "Choices", "must be a non-empty array")
	}
	for i, raw := range raws {
		r, err := parseRule(where, fmt.Sprintf("Choices[%d]", i), raw, true)
		if err != nil {
			return err
		}
		st.choices = append(st.choices, r)
	}
	if raw, ok := obj["Default"]; ok {
		var err error
		if st.dflt, err = str(where, "Default", raw); err != nil {
			return err
		}
	}
	return nil
}

func parseRule(where, field string, raw json.RawMessage, top bool) (*rule, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, invalid(where, field, "must be a JSON object")
	}
	allowed := append([]string{"Variable", "Comment", "And", "Or", "Not"}, opFields...)
	if top {
		allowed = append(allowed, "Next")
	}
	if err := checkFields(where, field+".", "Choice rule", obj, allowed...); err != nil {
		return nil, err
	}
	r := &rule{}
	if top {
		var err error
		if r.next, err = str(where, field+".Next", obj["Next"]); err != nil {
			return nil, err
		}
	}
	var ops []string
	for _, k := range sortedKeys(obj) {
		if k == "And" || k == "Or" || k == "Not" || contains(opFields, k) {
			ops = append(ops, k)
		}
	}
	if len(ops) != 1 {
		return nil, invalid(where, field, "exactly one operator is required, found %d %v", len(ops), ops)
	}
	op := ops[0]
	_, hasVar := obj["Variable"]
	switch op {
	case "And", "Or":
		if hasVar {
			return nil, invalid(where, field+".Variable", "is not valid with %s", op)
		}
		var subs []json.RawMessage
		if err := json.Unmarshal(obj[op], &subs); err != nil || len(subs) == 0 {
			return nil, invalid(where, field+"."+op, "must be a non-empty array of rules")
		}
		for i, s := range subs {
			sub, err := parseRule(where, fmt.Sprintf("%s.%s[%d]", field, op, i), s, false)
			if err != nil {
				return nil, err
			}
			if op == "And" {
				r.and = append(r.and, sub)
			} else {
				r.or = append(r.or, sub)
			}
		}
		return r, nil
	case "Not":
		if hasVar {
			return nil, invalid(where, field+".Variable", "is not valid with Not")
		}
		sub, err := parseRule(where, field+".Not", obj["Not"], false)
		r.not = sub
		return r, err
	}
	if !hasVar {
		return nil, invalid(where, field+".Variable", "is required with %s", op)
	}
	var err error
	if r.variable, err = refPath(where, field+".Variable", obj["Variable"]); err != nil {
		return nil, err
	}
	f := field + "." + op
	if base, ok := strings.CutSuffix(op, "Path"); ok && choiceOps[base] != "" {
		r.op = base
		r.operandPath, err = refPath(where, f, obj[op])
		return r, err
	}
	r.op = op
	if r.operand, err = decodeJSON(obj[op]); err != nil {
		return nil, invalid(where, f, "%v", err)
	}
	want := choiceOps[op]
	ok := false
	switch want {
	case "string", "pattern":
		_, ok = r.operand.(string)
	case "number":
		_, ok = r.operand.(json.Number)
	case "boolean", "test":
		_, ok = r.operand.(bool)
		want = "boolean"
	case "timestamp":
		s, isStr := r.operand.(string)
		_, ok = parseTimestamp(s)
		ok = ok && isStr
	}
	if !ok {
		return nil, invalid(where, f, "must be a %s", want)
	}
	return r, nil
}

// eval reports whether the rule matches. The error is a States.Runtime cause.
func (r *rule) eval(input any, ctxObj func() any) (bool, error) {
	switch {
	case r.and != nil:
		for _, s := range r.and {
			if ok, err := s.eval(input, ctxObj); err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case r.or != nil:
		for _, s := range r.or {
			if ok, err := s.eval(input, ctxObj); err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case r.not != nil:
		ok, err := r.not.eval(input, ctxObj)
		return !ok, err
	}
	read := func(p *path) (any, bool) {
		if p.ctx {
			return p.get(ctxObj())
		}
		return p.get(input)
	}
	v, found := read(r.variable)
	if r.op == "IsPresent" {
		return found == r.operand.(bool), nil
	}
	if !found {
		return false, fmt.Errorf("Invalid path '%s': The choice state's condition path references an invalid value.", r.variable.src)
	}
	switch r.op {
	case "IsNull":
		return (v == nil) == r.operand.(bool), nil
	case "IsNumeric":
		_, ok := v.(json.Number)
		return ok == r.operand.(bool), nil
	case "IsString":
		_, ok := v.(string)
		return ok == r.operand.(bool), nil
	case "IsBoolean":
		_, ok := v.(bool)
		return ok == r.operand.(bool), nil
	case "IsTimestamp":
		s, ok := v.(string)
		_, isTS := parseTimestamp(s)
		return (ok && isTS) == r.operand.(bool), nil
	}
	operand := r.operand
	if r.operandPath != nil {
		var ok bool
		if operand, ok = read(r.operandPath); !ok {
			return false, fmt.Errorf("Invalid path '%s': The choice state's comparison path references an invalid value.", r.operandPath.src)
		}
	}
	return compare(r.op, v, operand), nil
}

// compare applies a comparison operator; values of the wrong type never match.
func compare(op string, v, operand any) bool {
	var c int
	switch choiceOps[op] {
	case "pattern":
		s, ok1 := v.(string)
		pat, ok2 := operand.(string)
		return ok1 && ok2 && matchPattern(s, pat)
	case "string":
		a, ok1 := v.(string)
		b, ok2 := operand.(string)
		if !ok1 || !ok2 {
			return false
		}
		c = compareUTF16(a, b)
	case "number":
		a, ok1 := toRat(v)
		b, ok2 := toRat(operand)
		if !ok1 || !ok2 {
			return false
		}
		c = a.Cmp(b)
	case "boolean":
		a, ok1 := v.(bool)
		b, ok2 := operand.(bool)
		return ok1 && ok2 && a == b
	case "timestamp":
		as, ok1 := v.(string)
		bs, ok2 := operand.(string)
		a, ok3 := parseTimestamp(as)
		b, ok4 := parseTimestamp(bs)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return false
		}
		c = a.Compare(b)
	}
	switch {
	case strings.HasSuffix(op, "LessThanEquals"):
		return c <= 0
	case strings.HasSuffix(op, "GreaterThanEquals"):
		return c >= 0
	case strings.HasSuffix(op, "LessThan"):
		return c < 0
	case strings.HasSuffix(op, "GreaterThan"):
		return c > 0
	}
	return c == 0
}

func toRat(v any) (*big.Rat, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, false
	}
	return new(big.Rat).SetString(string(n))
}

// compareUTF16 orders strings by UTF-16 code units, as Step Functions (Java) does.
func compareUTF16(a, b string) int {
	x, y := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for i := 0; i < len(x) && i < len(y); i++ {
		if x[i] != y[i] {
			if x[i] < y[i] {
				return -1
			}
			return 1
		}
	}
	return len(x) - len(y)
}

// matchPattern implements StringMatches: * matches any run of characters, \* a literal star
// and \\ a literal backslash.
func matchPattern(s, pattern string) bool {
	type tok struct {
		star bool
		r    rune
	}
	var toks []tok
	rs := []rune(pattern)
	for i := 0; i < len(rs); i++ {
		switch {
		case rs[i] == '\\' && i+1 < len(rs) && (rs[i+1] == '*' || rs[i+1] == '\\'):
			i++
			toks = append(toks, tok{r: rs[i]})
		case rs[i] == '*':
			toks = append(toks, tok{star: true})
		default:
			toks = append(toks, tok{r: rs[i]})
		}
	}
	in := []rune(s)
	// Iterative glob matching with backtracking to the last star.
	ti, si, starT, starS := 0, 0, -1, 0
	for si < len(in) {
		switch {
		case ti < len(toks) && !toks[ti].star && toks[ti].r == in[si]:
			ti++
			si++
		case ti < len(toks) && toks[ti].star:
			starT, starS = ti, si
			ti++
		case starT >= 0:
			starS++
			ti, si = starT+1, starS
		default:
			return false
		}
	}
	for ti < len(toks) && toks[ti].star {
		ti++
	}
	return ti == len(toks)
}
