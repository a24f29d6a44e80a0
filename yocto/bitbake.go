package yocto

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// assignment is one variable assignment in a bitbake file.
type assignment struct {
	Var      string // variable name without overrides, e.g. "RDEPENDS"
	Override string // ":append", ":${PN}", ":pn-foo" suffixes, joined
	Flag     string // the [flag] name for flag assignments
	Op       string // = ?= ??= := += =+ .= =.
	Value    string
	Line     int
}

// recipe is a parsed bitbake file (.bb, .bbappend, .inc or .conf).
type recipe struct {
	Assignments []assignment
	Inherits    []string
	Requires    []string // require and include, unexpanded
	Functions   map[string]string
	Tasks       []string // addtask lines
}

var (
	reAssign = regexp.MustCompile(`(?s)^(export\s+)?([A-Za-z0-9_\-${}.+/]+?)((?::[A-Za-z0-9_\-${}.+]+)*)(\[[A-Za-z0-9_\-]+\])?\s*(\?\?=|\?=|:=|\+=|=\+|\.=|=\.|=)\s*(.*)$`)
	reFunc   = regexp.MustCompile(`^(python\s+)?([A-Za-z0-9_\-${}:]*)\s*\(\)\s*\{\s*$`)
	rePyFunc = regexp.MustCompile(`^python\s+([A-Za-z0-9_\-${}:]+)\s*\(\)\s*\{?\s*$`)
	reDef    = regexp.MustCompile(`^def\s+[A-Za-z0-9_]+\(`)
)

// parseBitbake parses r. It understands comments, line continuations,
// quoted multi-line values, every assignment operator with overrides and
// flags, inherit, require/include, addtask, shell and python functions and
// top-level def blocks. Anything else is an error naming the line.
func parseBitbake(name string, r io.Reader) (*recipe, error) {
	rec := &recipe{Functions: map[string]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	lineNo := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		lineNo++
		return sc.Text(), true
	}
	for {
		line, ok := next()
		if !ok {
			break
		}
		start := lineNo
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		// Functions: body runs to a line that is exactly "}".
		if m := reFunc.FindStringSubmatch(trimmed); m != nil || rePyFunc.MatchString(trimmed) {
			fname := ""
			if m != nil {
				fname = m[2]
			} else {
				fname = rePyFunc.FindStringSubmatch(trimmed)[1]
			}
			var body []string
			closed := false
			for {
				l, ok := next()
				if !ok {
					break
				}
				if l == "}" {
					closed = true
					break
				}
				body = append(body, l)
			}
			if !closed {
				return nil, fmt.Errorf("%s:%d: function %q has no closing brace", name, start, fname)
			}
			rec.Functions[fname] = strings.Join(body, "\n")
			continue
		}
		if reDef.MatchString(trimmed) {
			// A python def block: indented lines follow.
			for {
				l, ok := next()
				if !ok || (l != "" && !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "\t")) {
					if ok {
						return nil, fmt.Errorf("%s:%d: statement right after a def block; leave a blank line", name, lineNo)
					}
					break
				}
				if l == "" {
					break
				}
			}
			continue
		}
		// Join continuation lines.
		for strings.HasSuffix(line, `\`) {
			l, ok := next()
			if !ok {
				return nil, fmt.Errorf("%s:%d: file ends inside a line continuation", name, start)
			}
			line = strings.TrimSuffix(line, `\`) + "\n" + l
		}
		trimmed = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "inherit ") || strings.HasPrefix(trimmed, "inherit_defer "):
			rec.Inherits = append(rec.Inherits, strings.Fields(trimmed)[1:]...)
			continue
		case strings.HasPrefix(trimmed, "require ") || strings.HasPrefix(trimmed, "include "):
			rec.Requires = append(rec.Requires, strings.TrimSpace(strings.SplitN(trimmed, " ", 2)[1]))
			continue
		case strings.HasPrefix(trimmed, "addtask "):
			rec.Tasks = append(rec.Tasks, trimmed)
			continue
		case strings.HasPrefix(trimmed, "EXPORT_FUNCTIONS ") || strings.HasPrefix(trimmed, "deltask ") || strings.HasPrefix(trimmed, "addhandler "):
			continue
		}
		m := reAssign.FindStringSubmatch(trimmed)
		if m == nil {
			return nil, fmt.Errorf("%s:%d: cannot parse %q", name, start, firstLine(trimmed))
		}
		value := strings.TrimSpace(m[6])
		// A quoted value may span lines without continuations.
		if strings.HasPrefix(value, `"`) {
			for strings.Count(value, `"`)%2 == 1 {
				l, ok := next()
				if !ok {
					return nil, fmt.Errorf("%s:%d: unterminated quoted value", name, start)
				}
				value += "\n" + l
			}
			if !strings.HasSuffix(value, `"`) {
				return nil, fmt.Errorf("%s:%d: text after the closing quote of %s", name, start, m[2])
			}
			value = strings.TrimSuffix(strings.TrimPrefix(value, `"`), `"`)
		} else if strings.HasPrefix(value, `'`) && strings.HasSuffix(value, `'`) && len(value) >= 2 {
			value = value[1 : len(value)-1]
		} else {
			return nil, fmt.Errorf("%s:%d: value of %s must be quoted", name, start, m[2])
		}
		flag := strings.Trim(m[4], "[]")
		rec.Assignments = append(rec.Assignments, assignment{Var: m[2], Override: m[3], Flag: flag, Op: m[5], Value: value, Line: start})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return rec, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// get returns the value of a plain (no override, no flag) variable after
// applying its assignments in order; set reports whether any assignment
// was seen.
func (r *recipe) get(name string) (value string, set bool) {
	for _, a := range r.Assignments {
		if a.Var != name || a.Flag != "" || a.Override != "" {
			continue
		}
		switch a.Op {
		case "=", ":=":
			value, set = a.Value, true
		case "?=", "??=":
			if !set {
				value, set = a.Value, true
			}
		case "+=":
			value, set = strings.TrimSpace(value+" "+a.Value), true
		case "=+":
			value, set = strings.TrimSpace(a.Value+" "+value), true
		case ".=":
			value, set = value+a.Value, true
		case "=.":
			value, set = a.Value+value, true
		}
	}
	return value, set
}

// all returns every value assigned to name with the given override suffix
// (for example ":${PN}"), in order.
func (r *recipe) all(name, override string) []string {
	var out []string
	for _, a := range r.Assignments {
		if a.Var == name && a.Override == override && a.Flag == "" {
			out = append(out, a.Value)
		}
	}
	return out
}

// flag returns the value of name[flag].
func (r *recipe) flag(name, flag string) (string, bool) {
	for i := len(r.Assignments) - 1; i >= 0; i-- {
		a := r.Assignments[i]
		if a.Var == name && a.Flag == flag {
			return a.Value, true
		}
	}
	return "", false
}

// expand replaces ${VAR} references with vars' values, leaving unknown
// references and inline python untouched.
func expand(s string, vars map[string]string) string {
	for i := 0; i < 8; i++ {
		changed := false
		for k, v := range vars {
			ref := "${" + k + "}"
			if strings.Contains(s, ref) {
				s = strings.ReplaceAll(s, ref, v)
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	return s
}
