package main

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// goBench holds the metrics of `go test -bench` output, keyed by the
// package path relative to the module ("dbus", "trust/artifact") and the
// benchmark name without its -GOMAXPROCS suffix.
type goBench map[string]map[string]float64

const modulePath = "github.com/mender-agent/mender-agent"

var procSuffix = regexp.MustCompile(`-\d+$`)

// parseGoBench reads benchmark result lines; anything else is ignored.
func parseGoBench(r io.Reader, into goBench) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	pkg := ""
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(p), modulePath), "/")
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		fields := strings.Fields(line)
		// name iterations (value unit)...
		if len(fields) < 4 || len(fields)%2 != 0 {
			continue
		}
		if _, err := strconv.Atoi(fields[1]); err != nil {
			continue
		}
		m := map[string]float64{}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			m[fields[i+1]] = v
		}
		into[pkg+"."+procSuffix.ReplaceAllString(fields[0], "")] = m
	}
	return sc.Err()
}

// get returns a metric, or nil when the benchmark or metric is missing.
func (g goBench) get(name, unit string) *float64 {
	m, ok := g[name]
	if !ok {
		return nil
	}
	v, ok := m[unit]
	if !ok {
		return nil
	}
	return &v
}

// scaled returns get(name, unit) multiplied by k.
func (g goBench) scaled(name, unit string, k float64) *float64 {
	v := g.get(name, unit)
	if v == nil {
		return nil
	}
	return val(*v * k)
}
