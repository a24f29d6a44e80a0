package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
)

// Log field names used by this package.
const (
	fieldFile = "file"
	fieldKey  = "key"
)

// FieldError is a configuration value of the wrong type, out of range, or in
// conflict with another. File, Line and Column are set when known.
type FieldError struct {
	File   string
	Line   int
	Column int
	// Field is the dotted path of the key, spelled as in Config's json
	// tags, for example "HttpsClient.Certificate" or "Servers[1].ServerURL".
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	switch {
	case e.File != "" && e.Line > 0:
		return fmt.Sprintf("config %s:%d:%d: %s: %s", e.File, e.Line, e.Column, e.Field, e.Msg)
	case e.File != "":
		return fmt.Sprintf("config %s: %s: %s", e.File, e.Field, e.Msg)
	default:
		return fmt.Sprintf("config: %s: %s", e.Field, e.Msg)
	}
}

// otherToolKeys are top-level keys that other Mender tools read from the
// same file (mender-update, update modules, Mender 3.x). They are accepted
// without a warning and otherwise ignored. Lower case.
var otherToolKeys = map[string]bool{
	"artifactscriptspath":                       true,
	"bootutilitiesgetnextactivepart":            true,
	"clientprotocol":                            true,
	"bootutilitiessetactivepart":                true,
	"devicetypefile":                            true,
	"modulespath":                               true,
	"modulesworkpath":                           true,
	"moduletimeoutseconds":                      true,
	"retrydownloadcount":                        true,
	"rootfsparta":                               true,
	"rootfspartb":                               true,
	"rootfsscriptspath":                         true,
	"statescriptretryintervalseconds":           true,
	"statescriptretrytimeoutseconds":            true,
	"statescripttimeoutseconds":                 true,
	"updatecontrolmapbootexpirationtimeseconds": true,
	"updatecontrolmapexpirationtimeseconds":     true,
	"updatecontrolmappollintervalseconds":       true,
	"updatelogpath":                             true,
}

// decoder applies one parsed file onto a Config: keys present in the file
// override, nested objects merge field by field, arrays replace.
type decoder struct {
	file    string
	data    []byte
	log     logrus.FieldLogger
	sources map[string]string
}

var secretType = reflect.TypeFor[Secret]()

func (d *decoder) fieldErr(n *node, path, msg string) *FieldError {
	line, col := lineCol(d.data, n.off)
	return &FieldError{File: d.file, Line: line, Column: col, Field: path, Msg: msg}
}

func (d *decoder) typeErr(n *node, path, want string) *FieldError {
	return d.fieldErr(n, path, fmt.Sprintf("expected %s, got %s", want, n.kind))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonName is the file key of a struct field.
func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

// object applies the members of the JSON object n onto the struct v.
func (d *decoder) object(n *node, v reflect.Value, path string) error {
	if n.kind != kindObject {
		return d.typeErr(n, path, "an object")
	}
	t := v.Type()
	seen := make(map[int]string, len(n.obj))
	for _, m := range n.obj {
		idx := -1
		for i := range t.NumField() {
			f := t.Field(i)
			if f.IsExported() && strings.EqualFold(jsonName(f), m.key) {
				idx = i
				break
			}
		}
		if idx < 0 {
			d.unknown(path, m.key)
			continue
		}
		f := t.Field(idx)
		fpath := join(path, jsonName(f))
		if prev, dup := seen[idx]; dup {
			d.log.WithField(fieldFile, d.file).WithField(fieldKey, fpath).
				Warnf("configuration key %q in %s repeats %q; the later one wins", m.key, d.file, prev)
		}
		seen[idx] = m.key
		if path == "" && strings.EqualFold(f.Name, "Connectivity") {
			d.log.WithField(fieldFile, d.file).WithField(fieldKey, fpath).
				Debugf("configuration key %s in %s is accepted for compatibility and ignored", fpath, d.file)
		}
		if err := d.value(m.val, v.Field(idx), fpath); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) unknown(path, key string) {
	full := join(path, key)
	if path == "" && otherToolKeys[strings.ToLower(key)] {
		d.log.WithField(fieldFile, d.file).WithField(fieldKey, full).
			Debugf("configuration key %s in %s belongs to another Mender tool; ignored", full, d.file)
		return
	}
	d.log.WithField(fieldFile, d.file).WithField(fieldKey, full).
		Warnf("unknown configuration key %q in %s; ignored (check its spelling)", full, d.file)
}

// value applies the JSON value n onto v. null leaves v unchanged, as
// encoding/json does.
func (d *decoder) value(n *node, v reflect.Value, path string) error {
	if n.kind == kindNull {
		return nil
	}
	switch {
	case v.Type() == secretType || v.Kind() == reflect.String:
		if n.kind != kindString {
			return d.typeErr(n, path, "a string")
		}
		v.SetString(n.str)
	case v.Kind() == reflect.Bool:
		if n.kind != kindBool {
			return d.typeErr(n, path, "a boolean (true or false)")
		}
		v.SetBool(n.boolean)
	case v.Kind() == reflect.Int:
		if n.kind != kindNumber {
			return d.typeErr(n, path, "an integer")
		}
		i, err := strconv.ParseInt(n.num.String(), 10, 32)
		if err != nil {
			return d.fieldErr(n, path, fmt.Sprintf("expected an integer between %d and %d, got %s", int32(-1<<31), int32(1<<31-1), n.num))
		}
		v.SetInt(i)
	case v.Kind() == reflect.Float64:
		if n.kind != kindNumber {
			return d.typeErr(n, path, "a number")
		}
		f, err := n.num.Float64()
		if err != nil {
			return d.fieldErr(n, path, fmt.Sprintf("expected a number, got %s", n.num))
		}
		v.SetFloat(f)
	case v.Kind() == reflect.Struct:
		// Nested objects merge field by field: only the keys present change.
		return d.object(n, v, path)
	case v.Kind() == reflect.Slice:
		// Arrays replace whatever an earlier file set.
		if n.kind != kindArray {
			return d.typeErr(n, path, "an array")
		}
		s := reflect.MakeSlice(v.Type(), len(n.arr), len(n.arr))
		for i, el := range n.arr {
			epath := fmt.Sprintf("%s[%d]", path, i)
			if el.kind == kindNull {
				return d.typeErr(el, epath, elemWant(v.Type().Elem()))
			}
			if err := d.value(el, s.Index(i), epath); err != nil {
				return err
			}
		}
		v.Set(s)
	default:
		return d.fieldErr(n, path, "unsupported field type "+v.Type().String())
	}
	d.sources[strings.ToLower(path)] = d.file
	return nil
}

func elemWant(t reflect.Type) string {
	if t.Kind() == reflect.Struct {
		return "an object"
	}
	return "a string"
}
