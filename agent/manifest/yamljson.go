package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	goyaml "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"
)

// yamlToJSON is yaml.YAMLToJSONStrict, byte for byte and error for error,
// with the last of its three steps written out, and one ambiguity refused.
//
// The library parses the document strictly into generic values
// (go.yaml.in/yaml/v2, duplicate keys refused), converts them to values
// JSON can hold (map keys to strings), and encodes those with
// json.Marshal, whose reflection and per-map key sorting were ~17 % of a
// cold load's CPU (issue 10's 6 MiB world). Here the parse is the same
// call, and the generic values are written as JSON directly, in
// json.Marshal's form (map keys sorted bytewise, HTML-safe escapes), for
// the types the parser produces: maps, sequences, strings, integers,
// booleans and null. A string with a byte to escape and a float go through
// encoding/json itself; a map key of a type the library refuses, or a
// value encoding/json refuses, sends the whole document to the library for
// its error. FuzzYAMLToJSON compares the two.
//
// The one difference: two keys of one map that are one string in JSON
// (1 and "1"; true and "true") are refused. The library keeps one of the
// two values, whichever its map iteration meets last, so the same file
// could give either policy from one run to the next.
func yamlToJSON(doc []byte) ([]byte, error) {
	var obj any
	if err := goyaml.UnmarshalStrict(doc, &obj); err != nil {
		return nil, err // what the library returns, as it is
	}
	out, err := appendJSON(make([]byte, 0, len(doc)+len(doc)/4), obj)
	if errors.Is(err, errToLibrary) {
		return yaml.YAMLToJSONStrict(doc)
	}
	return out, err
}

// errToLibrary says appendJSON left the document to the library.
var errToLibrary = errors.New("for the library")

// appendJSON appends v, a value go.yaml.in/yaml/v2 decoded into an empty
// interface, as json.Marshal encodes it after the library's conversion.
func appendJSON(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendJSONString(b, v)
	case bool:
		return strconv.AppendBool(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case uint64:
		return strconv.AppendUint(b, v, 10), nil
	case []any:
		if v == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSON(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case map[any]any:
		keys := make([]string, 0, len(v))
		byKey := make(map[string]any, len(v))
		for k, e := range v {
			s, err := jsonKey(k)
			if err != nil {
				return nil, err
			}
			if _, dup := byKey[s]; dup {
				return nil, fmt.Errorf("yaml: two keys of one map are both %q in JSON", s)
			}
			byKey[s] = e
			keys = append(keys, s)
		}
		slices.Sort(keys) // json.Marshal's order: bytewise
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSONString(b, k); err != nil {
				return nil, err
			}
			b = append(b, ':')
			if b, err = appendJSON(b, byKey[k]); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	default: // float64, and anything else: encoding/json itself
		j, err := json.Marshal(v)
		if err != nil {
			return nil, errToLibrary
		}
		return append(b, j...), nil
	}
}

// jsonKey is the string the library makes of a map key: a string as it
// is, an integer in decimal, a boolean as true or false, a float as YAML
// writes it (shortest form at 32 bits; .inf, -.inf, .nan). Other keys are
// the library's to refuse.
func jsonKey(k any) (string, error) {
	switch k := k.(type) {
	case string:
		return k, nil
	case int:
		return strconv.Itoa(k), nil
	case int64:
		return strconv.FormatInt(k, 10), nil
	case bool:
		return strconv.FormatBool(k), nil
	case float64:
		switch {
		case math.IsInf(k, 1):
			return ".inf", nil
		case math.IsInf(k, -1):
			return "-.inf", nil
		case math.IsNaN(k):
			return ".nan", nil
		}
		return strconv.FormatFloat(k, 'g', -1, 32), nil
	}
	return "", errToLibrary
}

// appendJSONString appends s quoted as json.Marshal quotes it: as it is
// when every byte is printable ASCII that needs no escape (not '"', '\\',
// nor '<', '>' and '&', which json.Marshal escapes for HTML), otherwise
// through json.Marshal.
func appendJSONString(b []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			j, err := json.Marshal(s)
			if err != nil {
				return nil, errToLibrary
			}
			return append(b, j...), nil
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}
