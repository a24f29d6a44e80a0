package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// kind is the JSON type of a value in a parsed file.
type kind int

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

func (k kind) String() string {
	switch k {
	case kindBool:
		return "a boolean"
	case kindNumber:
		return "a number"
	case kindString:
		return "a string"
	case kindArray:
		return "an array"
	case kindObject:
		return "an object"
	default:
		return "null"
	}
}

// member is one key of a JSON object, in file order.
type member struct {
	key string
	val *node
}

// node is one JSON value with the byte offset where it starts, so errors
// about it can name a line and column.
type node struct {
	kind    kind
	off     int64
	boolean bool
	num     json.Number
	str     string
	arr     []*node
	obj     []member
}

// SyntaxError is a configuration file that is not valid JSON. Line and
// Column are 1-based and point at the offending byte.
type SyntaxError struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("config %s:%d:%d: invalid JSON: %s", e.File, e.Line, e.Column, e.Msg)
}

// maxDepth bounds nesting so a hostile file cannot exhaust the stack.
const maxDepth = 64

// parseTree parses data as one JSON value. Keys keep their spelling;
// matching is the caller's business.
func parseTree(file string, data []byte) (*node, error) {
	p := &treeParser{file: file, data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	// The whole-input scanner of json.Unmarshal reports exact offsets; the
	// streaming decoder below does not, so syntax is checked here first.
	var v json.RawMessage // validates without building a value tree
	if err := json.Unmarshal(data, &v); err != nil {
		var se *json.SyntaxError
		if !errors.As(err, &se) {
			return nil, p.errAt(0, err.Error())
		}
		if strings.Contains(se.Error(), "unexpected end of JSON input") {
			return nil, p.errAt(int64(len(data)), "unexpected end of file")
		}
		return nil, p.errAt(se.Offset-1, strings.TrimPrefix(se.Error(), "json: "))
	}
	p.dec.UseNumber()
	// json.Unmarshal has already refused data after the top-level value.
	return p.value(0)
}

type treeParser struct {
	file string
	data []byte
	dec  *json.Decoder
}

// valueStart returns the offset of the first byte of the next value, skipping
// whitespace and the ':' or ',' separators the decoder has not consumed yet.
func (p *treeParser) valueStart() int64 {
	off := p.dec.InputOffset()
	for off < int64(len(p.data)) {
		switch p.data[off] {
		case ' ', '\t', '\r', '\n', ':', ',':
			off++
		default:
			return off
		}
	}
	return off
}

func (p *treeParser) token() (json.Token, error) {
	tok, err := p.dec.Token()
	if err == nil {
		return tok, nil
	}
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return nil, p.errAt(se.Offset-1, se.Error())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, p.errAt(int64(len(p.data)), "unexpected end of file")
	default:
		return nil, p.errAt(p.dec.InputOffset(), err.Error())
	}
}

func (p *treeParser) value(depth int) (*node, error) {
	if depth > maxDepth {
		return nil, p.errAt(p.valueStart(), fmt.Sprintf("nesting deeper than %d levels", maxDepth))
	}
	off := p.valueStart()
	tok, err := p.token()
	if err != nil {
		return nil, err
	}
	n := &node{off: off}
	switch t := tok.(type) {
	case nil:
		n.kind = kindNull
	case bool:
		n.kind, n.boolean = kindBool, t
	case json.Number:
		n.kind, n.num = kindNumber, t
	case string:
		n.kind, n.str = kindString, t
	case json.Delim:
		switch t {
		case '{':
			n.kind = kindObject
			for p.dec.More() {
				keyTok, err := p.token()
				if err != nil {
					return nil, err
				}
				key, _ := keyTok.(string)
				v, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.obj = append(n.obj, member{key: key, val: v})
			}
		case '[':
			n.kind = kindArray
			for p.dec.More() {
				v, err := p.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.arr = append(n.arr, v)
			}
		default:
			return nil, p.errAt(off, fmt.Sprintf("unexpected %q", t))
		}
		if _, err := p.token(); err != nil { // closing delimiter
			return nil, err
		}
	}
	return n, nil
}

func (p *treeParser) errAt(off int64, msg string) *SyntaxError {
	line, col := lineCol(p.data, off)
	return &SyntaxError{File: p.file, Line: line, Column: col, Msg: msg}
}

// lineCol converts a byte offset into a 1-based line and column (counted in
// characters, as editors do).
func lineCol(data []byte, off int64) (line, col int) {
	if off < 0 {
		off = 0
	}
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	return line, col
}
