package artifact

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// headerInfo is the v3 header-info document.
type headerInfo struct {
	Payloads []struct {
		Type *string `json:"type"`
	} `json:"payloads"`
	ArtifactProvides *struct {
		ArtifactName  string `json:"artifact_name"`
		ArtifactGroup string `json:"artifact_group,omitempty"`
	} `json:"artifact_provides"`
	ArtifactDepends *struct {
		ArtifactName  []string `json:"artifact_name,omitempty"`
		DeviceType    []string `json:"device_type"`
		ArtifactGroup []string `json:"artifact_group,omitempty"`
	} `json:"artifact_depends"`
}

// typeInfo is a v3 headers/NNNN/type-info document.
type typeInfo struct {
	Type                   *string           `json:"type"`
	ArtifactProvides       map[string]string `json:"artifact_provides,omitempty"`
	ArtifactDepends        map[string]any    `json:"artifact_depends,omitempty"`
	ClearsArtifactProvides []string          `json:"clears_artifact_provides,omitempty"`
}

// header is the parsed, hash-checked header.
type header struct {
	info     headerInfo
	types    []typeInfo
	metaData []json.RawMessage // nil when absent
	scripts  []string
}

// validScriptName reports whether s is a state script name a header may
// carry: <State>_<Enter|Leave|Error>_NN, optionally followed by "_" and a
// description of one or more characters in [A-Za-z0-9_.,-], where State is
// one of the Mender client's script states.
func validScriptName(s string) bool {
	state, rest, ok := strings.Cut(s, "_")
	if !ok {
		return false
	}
	switch state {
	case "Idle", "Sync", "Download", "ArtifactInstall", "ArtifactReboot",
		"ArtifactRollback", "ArtifactRollbackReboot", "ArtifactCommit", "ArtifactFailure":
	default:
		return false
	}
	action, rest, ok := strings.Cut(rest, "_")
	if !ok || (action != "Enter" && action != "Leave" && action != "Error") {
		return false
	}
	if len(rest) < 2 || !isDigit(rest[0]) || !isDigit(rest[1]) {
		return false
	}
	if len(rest) == 2 {
		return true
	}
	desc, ok := strings.CutPrefix(rest[2:], "_")
	if !ok || desc == "" {
		return false
	}
	for _, c := range []byte(desc) {
		if !isDigit(c) && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
			c != '_' && c != '.' && c != ',' && c != '-' {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// parseHeader parses the decompressed header tar strictly: header-info
// first, then scripts/<name>, then per payload headers/NNNN/type-info and an
// optional headers/NNNN/meta-data, nothing else. path names the member in
// errors. It must only be called on bytes whose hash matched the manifest.
func parseHeader(path string, r io.Reader) (*header, error) {
	c := &counter{r: r}
	tr := tar.NewReader(c)
	h := &header{}
	state := 0 // 0 want header-info; 1 scripts or buckets; 2 buckets
	var contentEnd, lastSize int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, invalid(path, "header tar: "+tarReason(err))
		}
		name := hdr.Name
		if err := checkRegular(hdr); err != nil {
			return nil, invalid(path, err.Error())
		}
		switch {
		case state == 0:
			if name != "header-info" {
				return nil, invalid(path, fmt.Sprintf("first entry is %q, want header-info", name))
			}
			if err := readJSON(tr, hdr.Size, &h.info); err != nil {
				return nil, invalid(path, "header-info: "+err.Error())
			}
			if err := checkHeaderInfo(&h.info); err != nil {
				return nil, invalid(path, "header-info: "+err.Error())
			}
			state = 1
		case state == 1 && strings.HasPrefix(name, "scripts/"):
			s := strings.TrimPrefix(name, "scripts/")
			if !validScriptName(s) {
				return nil, invalid(path, fmt.Sprintf("script name %q is not <State>_<Enter|Leave|Error>_NN[_description]", s))
			}
			for _, o := range h.scripts {
				if o == s {
					return nil, invalid(path, fmt.Sprintf("script %q appears twice", s))
				}
			}
			h.scripts = append(h.scripts, s)
		default:
			state = 2
			if err := h.bucketEntry(name, hdr.Size, tr); err != nil {
				return nil, invalid(path, err.Error())
			}
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return nil, invalid(path, fmt.Sprintf("entry %q: %s", name, tarReason(err)))
		}
		contentEnd, lastSize = c.n, hdr.Size
	}
	if err := tarEnd(c, contentEnd, lastSize, make([]byte, 4096)); err != nil {
		return nil, invalid(path, "header tar: "+tarReason(err))
	}
	if state == 0 {
		return nil, invalid(path, "no header-info")
	}
	if len(h.types) != len(h.info.Payloads) {
		return nil, invalid(path, fmt.Sprintf("header-info lists %d payloads but there are %d headers/NNNN/type-info", len(h.info.Payloads), len(h.types)))
	}
	return h, nil
}

// checkRegular accepts a plain regular tar entry: no links, devices,
// directories or sparse files.
func checkRegular(hdr *tar.Header) error {
	if hdr.Typeflag != tar.TypeReg {
		return fmt.Errorf("entry %q is not a regular file (tar type %q)", hdr.Name, hdr.Typeflag)
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return fmt.Errorf("entry %q is a sparse file", hdr.Name)
		}
	}
	return nil
}

// bucketEntry handles a headers/NNNN/<name> entry; buckets come in index
// order, type-info first, then an optional meta-data.
func (h *header) bucketEntry(name string, size int64, r io.Reader) error {
	rest, ok := strings.CutPrefix(name, "headers/")
	if !ok || len(rest) < 6 || rest[4] != '/' {
		return fmt.Errorf("unexpected entry %q", name)
	}
	idx, err := parseIndex(rest[:4])
	if err != nil {
		return fmt.Errorf("entry %q: %w", name, err)
	}
	switch rest[5:] {
	case "type-info":
		if idx != len(h.types) {
			return fmt.Errorf("entry %q out of order; want headers/%04d/type-info", name, len(h.types))
		}
		if idx >= len(h.info.Payloads) {
			return fmt.Errorf("entry %q has no payload in header-info", name)
		}
		var ti typeInfo
		if err := readJSON(r, size, &ti); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := checkTypeInfo(&ti, h.info.Payloads[idx].Type); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		h.types = append(h.types, ti)
		h.metaData = append(h.metaData, nil)
	case "meta-data":
		if idx != len(h.types)-1 || h.metaData[idx] != nil {
			return fmt.Errorf("entry %q out of order; meta-data follows its type-info, once", name)
		}
		var md json.RawMessage
		if size == 0 {
			md = json.RawMessage{}
		} else {
			var obj map[string]any
			raw, err := readBounded(r, size)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := decodeStrict(raw, &obj); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := checkMetaData(obj); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			md = raw
		}
		h.metaData[idx] = md
	default:
		return fmt.Errorf("unexpected entry %q", name)
	}
	return nil
}

func checkHeaderInfo(hi *headerInfo) error {
	if len(hi.Payloads) == 0 {
		return errors.New("no payloads")
	}
	if hi.ArtifactProvides == nil || hi.ArtifactProvides.ArtifactName == "" {
		return errors.New("artifact_provides.artifact_name is missing")
	}
	if hi.ArtifactDepends == nil || len(hi.ArtifactDepends.DeviceType) == 0 {
		return errors.New("artifact_depends.device_type is missing")
	}
	for i, p := range hi.Payloads {
		if p.Type != nil && *p.Type == "" {
			return fmt.Errorf("payloads[%d].type is empty", i)
		}
	}
	return nil
}

// checkTypeInfo compares type-info's type with header-info's. A "" type is
// accepted for rootfs-image only: mender-artifact up to 4.3 writes it.
func checkTypeInfo(ti *typeInfo, want *string) error {
	switch {
	case want == nil && ti.Type == nil:
		return nil
	case want == nil:
		return fmt.Errorf("type %q but header-info has a bootstrap (null) payload", *ti.Type)
	case ti.Type == nil:
		return fmt.Errorf("type is null but header-info says %q", *want)
	case *ti.Type == *want:
		return nil
	case *ti.Type == "" && *want == "rootfs-image":
		return nil
	}
	return fmt.Errorf("type %q does not match header-info type %q", *ti.Type, *want)
}

// checkMetaData requires top-level values to be strings, numbers or lists
// of those.
func checkMetaData(obj map[string]any) error {
	for k, v := range obj {
		switch v := v.(type) {
		case string, float64:
		case []any:
			for _, e := range v {
				switch e.(type) {
				case string, float64:
				default:
					return fmt.Errorf("key %q: list holds a %s; only strings and numbers are allowed", k, jsonKind(e))
				}
			}
		default:
			return fmt.Errorf("key %q: value is a %s; only strings, numbers and lists of those are allowed", k, jsonKind(v))
		}
	}
	return nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case map[string]any:
		return "object"
	case []any:
		return "list"
	}
	return fmt.Sprintf("%T", v)
}

// readBounded reads an entry of the given size, at most MaxHeaderJSON.
func readBounded(r io.Reader, size int64) ([]byte, error) {
	if size > MaxHeaderJSON {
		return nil, fmt.Errorf("%d bytes exceeds the limit of %d", size, MaxHeaderJSON)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

func readJSON(r io.Reader, size int64, v any) error {
	raw, err := readBounded(r, size)
	if err != nil {
		return err
	}
	return decodeStrict(raw, v)
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields, duplicate object keys and trailing data.
func decodeStrict(raw []byte, v any) error {
	if err := checkDuplicateKeys(raw); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("json: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("json: data after the value")
	}
	return nil
}

// checkDuplicateKeys walks the token stream and rejects an object with a
// repeated key: encoding/json silently keeps the last one, other parsers
// may keep the first.
func checkDuplicateKeys(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	type frame struct {
		keys   map[string]bool
		object bool
		isKey  bool
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("json: %w", err)
		}
		if len(stack) > 64 {
			return errors.New("json: nested too deeply")
		}
		top := len(stack) - 1
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				if top >= 0 && stack[top].object {
					stack[top].isKey = true
				}
				stack = append(stack, frame{keys: map[string]bool{}, object: true, isKey: true})
			case '[':
				if top >= 0 && stack[top].object {
					stack[top].isKey = true
				}
				stack = append(stack, frame{})
			default:
				stack = stack[:top]
			}
			continue
		}
		if top >= 0 && stack[top].object {
			if stack[top].isKey {
				k, _ := tok.(string)
				if stack[top].keys[k] {
					return fmt.Errorf("json: duplicate key %q", k)
				}
				stack[top].keys[k] = true
			}
			stack[top].isKey = !stack[top].isKey
		}
	}
}
