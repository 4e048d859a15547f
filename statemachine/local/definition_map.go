package local

import (
	"encoding/json"
	"fmt"
)

// Map state definitions: ItemProcessor/Iterator, ItemReader and ResultWriter.

func (p *parser) mapState(st *state, where string, obj map[string]json.RawMessage) error {
	ms := &mapSpec{}
	st.mp = ms
	_, hasProc := obj["ItemProcessor"]
	_, hasIter := obj["Iterator"]
	if hasProc == hasIter {
		return invalid(where, "ItemProcessor", "exactly one of ItemProcessor and Iterator is required")
	}
	if hasIter {
		var it map[string]json.RawMessage
		if err := json.Unmarshal(obj["Iterator"], &it); err != nil {
			return invalid(where, "Iterator", "must be a JSON object")
		}
		if err := checkFields(where, "Iterator.", "Iterator", it, "StartAt", "States", "Comment"); err != nil {
			return err
		}
		proc, err := p.machine(it, where, "Iterator.")
		if err != nil {
			return err
		}
		ms.proc = proc
	} else {
		var ip map[string]json.RawMessage
		if err := json.Unmarshal(obj["ItemProcessor"], &ip); err != nil {
			return invalid(where, "ItemProcessor", "must be a JSON object")
		}
		if err := checkFields(where, "ItemProcessor.", "ItemProcessor", ip, "ProcessorConfig", "StartAt", "States", "Comment"); err != nil {
			return err
		}
		if raw, ok := ip["ProcessorConfig"]; ok {
			var pc map[string]json.RawMessage
			if err := json.Unmarshal(raw, &pc); err != nil {
				return invalid(where, "ItemProcessor.ProcessorConfig", "must be a JSON object")
			}
			if err := checkFields(where, "ItemProcessor.ProcessorConfig.", "ProcessorConfig", pc, "Mode", "ExecutionType"); err != nil {
				return err
			}
			mode := "INLINE"
			if raw, ok := pc["Mode"]; ok {
				var err error
				if mode, err = str(where, "ItemProcessor.ProcessorConfig.Mode", raw); err != nil {
					return err
				}
			}
			switch mode {
			case "INLINE":
				if _, ok := pc["ExecutionType"]; ok {
					return invalid(where, "ItemProcessor.ProcessorConfig.ExecutionType", "is only valid with Mode DISTRIBUTED")
				}
			case "DISTRIBUTED":
				ms.distributed = true
				et, err := str(where, "ItemProcessor.ProcessorConfig.ExecutionType", pc["ExecutionType"])
				if err != nil {
					return err
				}
				switch et {
				case "STANDARD":
				case "EXPRESS":
					return &DefinitionError{Where: where, Field: "ItemProcessor.ProcessorConfig.ExecutionType",
						Msg: `field "ItemProcessor.ProcessorConfig.ExecutionType": "EXPRESS" is not implemented by the local executor`}
				default:
					return invalid(where, "ItemProcessor.ProcessorConfig.ExecutionType", "must be STANDARD or EXPRESS, got %q", et)
				}
			default:
				return invalid(where, "ItemProcessor.ProcessorConfig.Mode", "must be INLINE or DISTRIBUTED, got %q", mode)
			}
		}
		proc, err := p.machine(ip, where, "ItemProcessor.")
		if err != nil {
			return err
		}
		ms.proc = proc
	}
	if !ms.distributed {
		for _, f := range []string{"ItemReader", "ResultWriter", "ToleratedFailurePercentage", "ToleratedFailureCount", "Label"} {
			if _, ok := obj[f]; ok {
				return invalid(where, f, "is only valid in a Map with ProcessorConfig Mode DISTRIBUTED")
			}
		}
	}
	_, hasSel := obj["ItemSelector"]
	_, hasParams := obj["Parameters"]
	if hasSel && hasParams {
		return invalid(where, "Parameters", "cannot be used together with ItemSelector")
	}
	for _, f := range []string{"ItemSelector", "Parameters"} {
		if raw, ok := obj[f]; ok {
			t, err := templateField(where, f, raw)
			if err != nil {
				return err
			}
			ms.itemSelector = t
		}
	}
	if raw, ok := obj["ItemsPath"]; ok {
		if _, hasReader := obj["ItemReader"]; hasReader {
			return invalid(where, "ItemsPath", "cannot be used together with ItemReader in the local executor")
		}
		var err error
		if ms.itemsPath, err = refPath(where, "ItemsPath", raw); err != nil {
			return err
		}
	} else {
		ms.itemsPath = &path{src: "$"}
	}
	if raw, ok := obj["MaxConcurrency"]; ok {
		n, err := integer(where, "MaxConcurrency", raw, 0, 1<<31-1)
		if err != nil {
			return err
		}
		ms.maxConcurrency = int(n)
	}
	if raw, ok := obj["MaxConcurrencyPath"]; ok {
		if _, both := obj["MaxConcurrency"]; both {
			return invalid(where, "MaxConcurrencyPath", "cannot be used together with MaxConcurrency")
		}
		var err error
		if ms.maxConcurrencyPath, err = refPath(where, "MaxConcurrencyPath", raw); err != nil {
			return err
		}
	}
	if raw, ok := obj["ToleratedFailurePercentage"]; ok {
		if err := json.Unmarshal(raw, &ms.tolPct); err != nil || ms.tolPct < 0 || ms.tolPct > 100 {
			return invalid(where, "ToleratedFailurePercentage", "must be a number from 0 to 100")
		}
		ms.tolPctSet = true
	}
	if raw, ok := obj["ToleratedFailureCount"]; ok {
		n, err := integer(where, "ToleratedFailureCount", raw, 0, 1<<53)
		if err != nil {
			return err
		}
		ms.tolCount, ms.tolCountSet = n, true
	}
	if ms.distributed {
		ms.label = st.name
		if raw, ok := obj["Label"]; ok {
			var err error
			if ms.label, err = str(where, "Label", raw); err != nil {
				return err
			}
		}
		if len(ms.label) > 40 || ms.label == "" || !validName(ms.label) {
			return invalid(where, "Label", "the Map Run label %q must be 1 to 40 characters without whitespace or special characters (set Label when the state name does not qualify)", ms.label)
		}
	}
	if raw, ok := obj["ItemReader"]; ok {
		r, err := itemReader(where, raw)
		if err != nil {
			return err
		}
		ms.reader = r
		p.usesS3 = true
	}
	if raw, ok := obj["ResultWriter"]; ok {
		var rw map[string]json.RawMessage
		if err := json.Unmarshal(raw, &rw); err != nil {
			return invalid(where, "ResultWriter", "must be a JSON object")
		}
		if err := checkFields(where, "ResultWriter.", "ResultWriter", rw, "Resource", "Parameters"); err != nil {
			return err
		}
		res, err := str(where, "ResultWriter.Resource", rw["Resource"])
		if err != nil {
			return err
		}
		if res != resS3Put {
			return &DefinitionError{Where: where, Field: "ResultWriter.Resource", Msg: fmt.Sprintf("field \"ResultWriter.Resource\": resource %q is not implemented by the local executor", res)}
		}
		t, err := s3Params(where, "ResultWriter.Parameters", rw["Parameters"], []string{"Bucket"}, []string{"Prefix"})
		if err != nil {
			return err
		}
		ms.writer = t
		p.usesS3 = true
	}
	return nil
}

func itemReader(where string, raw json.RawMessage) (*readerSpec, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, invalid(where, "ItemReader", "must be a JSON object")
	}
	if err := checkFields(where, "ItemReader.", "ItemReader", obj, "Resource", "Parameters", "ReaderConfig"); err != nil {
		return nil, err
	}
	res, err := str(where, "ItemReader.Resource", obj["Resource"])
	if err != nil {
		return nil, err
	}
	r := &readerSpec{resource: res}
	var rc map[string]json.RawMessage
	if raw, ok := obj["ReaderConfig"]; ok {
		if err := json.Unmarshal(raw, &rc); err != nil {
			return nil, invalid(where, "ItemReader.ReaderConfig", "must be a JSON object")
		}
	}
	allowed := []string{"MaxItems"}
	switch res {
	case resS3List:
		r.params, err = s3Params(where, "ItemReader.Parameters", obj["Parameters"], []string{"Bucket"}, []string{"Prefix"})
	case resS3Get:
		allowed = append(allowed, "InputType")
		r.params, err = s3Params(where, "ItemReader.Parameters", obj["Parameters"], []string{"Bucket", "Key"}, []string{"VersionId"})
	default:
		return nil, &DefinitionError{Where: where, Field: "ItemReader.Resource", Msg: fmt.Sprintf("field \"ItemReader.Resource\": resource %q is not implemented by the local executor", res)}
	}
	if err != nil {
		return nil, err
	}
	if err := checkFields(where, "ItemReader.ReaderConfig.", "ReaderConfig", rc, allowed...); err != nil {
		return nil, err
	}
	if raw, ok := rc["MaxItems"]; ok {
		if r.maxItems, err = integer(where, "ItemReader.ReaderConfig.MaxItems", raw, 1, 100000000); err != nil {
			return nil, err
		}
	}
	if res == resS3Get {
		it, err := str(where, "ItemReader.ReaderConfig.InputType", rc["InputType"])
		if err != nil {
			return nil, err
		}
		switch it {
		case "JSON", "JSONL":
			r.inputType = it
		case "CSV", "MANIFEST", "PARQUET":
			return nil, &DefinitionError{Where: where, Field: "ItemReader.ReaderConfig.InputType",
				Msg: fmt.Sprintf("field \"ItemReader.ReaderConfig.InputType\": %q is not implemented by the local executor", it)}
		default:
			return nil, invalid(where, "ItemReader.ReaderConfig.InputType", "unknown input type %q", it)
		}
	}
	return r, nil
}

// s3Params compiles the Parameters of an ItemReader or ResultWriter, accepting only the
// listed keys (each possibly as "key.$").
func s3Params(where, field string, raw json.RawMessage, required, optional []string) (*tmpl, error) {
	if raw == nil {
		return nil, invalid(where, field, "is required")
	}
	t, err := templateField(where, field, raw)
	if err != nil {
		return nil, err
	}
	keys := t.topKeys()
	for _, k := range keys {
		if !contains(required, k) && !contains(optional, k) {
			return nil, notImplemented(where, field+"."+k)
		}
	}
	for _, k := range required {
		if !contains(keys, k) {
			return nil, invalid(where, field+"."+k, "is required")
		}
	}
	return t, nil
}
