package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sampleBench = `goos: linux
pkg: github.com/mender-agent/mender-agent/dbus
BenchmarkGetJwtToken-2   	   12000	     82000 ns/op	     12124 calls/s	        80.00 p50-µs	       500.0 p99-µs	    9000 B/op	     297 allocs/op
PASS
pkg: github.com/mender-agent/mender-agent/test/fleet
BenchmarkFleetRecovery/virtual-2         	       1	      1000 agents	         2.191 peak/mean
BenchmarkBroken-2 not a result line
ok  	github.com/mender-agent/mender-agent/dbus	3.1s
`

func TestParseGoBench(t *testing.T) {
	g := goBench{}
	require.NoError(t, parseGoBench(strings.NewReader(sampleBench), g))
	tests := []struct {
		name, bench, unit string
		want              *float64
	}{
		{name: "custom metric", bench: "dbus.BenchmarkGetJwtToken", unit: "calls/s", want: val(12124)},
		{name: "ns/op", bench: "dbus.BenchmarkGetJwtToken", unit: "ns/op", want: val(82000)},
		{name: "sub-benchmark without ns/op", bench: "test/fleet.BenchmarkFleetRecovery/virtual", unit: "peak/mean", want: val(2.191)},
		{name: "missing metric", bench: "dbus.BenchmarkGetJwtToken", unit: "req/s"},
		{name: "malformed line ignored", bench: "dbus.BenchmarkBroken", unit: "ns/op"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, g.get(tt.bench, tt.unit))
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int64
	}{
		{name: "GiB", in: "1GiB", want: 1 << 30},
		{name: "MiB", in: "64MiB", want: 64 << 20},
		{name: "bytes", in: "4096", want: 4096},
		{name: "garbage", in: "lots", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, parseSize(tt.in))
		})
	}
}

func TestBudgetVerdict(t *testing.T) {
	tests := []struct {
		name      string
		ours, ref *float64
		bud       budget
		want      *bool
	}{
		{name: "max met", ours: val(8), bud: budget{max: 9}, want: ptr(true)},
		{name: "max missed", ours: val(10), bud: budget{max: 9}, want: ptr(false)},
		{name: "min on ratio met", ours: val(90), ref: val(100), bud: budget{min: 0.8, onRatio: true}, want: ptr(true)},
		{name: "min on ratio missed", ours: val(30), ref: val(100), bud: budget{min: 0.8, onRatio: true}, want: ptr(false)},
		{name: "no reference, no verdict", ours: val(30), bud: budget{min: 0.8, onRatio: true}},
		{name: "not measured", bud: budget{max: 9}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r report
			r.add(figure{Ours: tt.ours, Reference: tt.ref}, &tt.bud)
			require.Len(t, r.Figures, 1)
			assert.Equal(t, tt.want, r.Figures[0].Met)
			md := r.markdown([]string{"summary"})
			if tt.want != nil && !*tt.want {
				assert.Contains(t, md, "**missed**")
			}
		})
	}
}

func ptr(b bool) *bool { return &b }

func TestUnitEnvironment(t *testing.T) {
	tests := []struct {
		name    string
		unit    string
		want    []string
		wantErr string
	}{
		{name: "none", unit: "[Service]\nExecStart=/usr/bin/mender-agent daemon\n"},
		{name: "one", unit: "[Service]\n# comment\nEnvironment=GOMEMLIMIT=6MiB\n", want: []string{"GOMEMLIMIT=6MiB"}},
		{name: "several words and lines", unit: "Environment=A=1 B=2\n  Environment=\"C=x y\" D=\n", want: []string{"A=1", "B=2", "C=x y", "D="}},
		{name: "commented out", unit: "#Environment=A=1\n"},
		{name: "unterminated quote", unit: "Environment=\"A=1\n", wantErr: `line 1: unterminated quote`},
		{name: "not an assignment", unit: "\nEnvironment=GOGC\n", wantErr: `line 2: "GOGC" is not NAME=value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := unitEnvironment(tt.unit)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
