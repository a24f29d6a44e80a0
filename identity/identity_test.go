package identity

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		out      string
		want     Data
		wantJSON string
		wantErr  error
		wantMsg  []string
	}{
		{name: "single mac", out: "mac=02:12:61:13:6c:42\n", want: Data{"mac": {"02:12:61:13:6c:42"}}, wantJSON: `{"mac":"02:12:61:13:6c:42"}`},
		{name: "no trailing newline", out: "mac=a", want: Data{"mac": {"a"}}, wantJSON: `{"mac":"a"}`},
		{name: "repeated keys become an array in order; keys sorted", out: "mac=a\nmac=b\ncpuid=1\n", want: Data{"mac": {"a", "b"}, "cpuid": {"1"}}, wantJSON: `{"cpuid":"1","mac":["a","b"]}`},
		{name: "split on the first equals sign", out: "serial=a=b==\n", want: Data{"serial": {"a=b=="}}, wantJSON: `{"serial":"a=b=="}`},
		{name: "empty value", out: "sku=\n", want: Data{"sku": {""}}, wantJSON: `{"sku":""}`},
		{name: "no trimming of spaces or carriage returns", out: " key = value \r\n", want: Data{" key ": {" value \r"}}, wantJSON: `{" key ":" value \r"}`},
		{name: "empty lines skipped anywhere", out: "\n\nmac=a\n\n\nsn=1\n\n", want: Data{"mac": {"a"}, "sn": {"1"}}, wantJSON: `{"mac":"a","sn":"1"}`},
		{name: "keys sorted by bytes", out: "b=1\nB=2\na=3\n_=4\n", want: Data{"b": {"1"}, "B": {"2"}, "a": {"3"}, "_": {"4"}}, wantJSON: `{"B":"2","_":"4","a":"3","b":"1"}`},
		{name: "quotes and backslashes escaped", out: "k=\"x\\y\"\n", want: Data{"k": {`"x\y"`}}, wantJSON: `{"k":"\"x\\y\""}`},
		{name: "html characters escaped as Mender 3.x did", out: "k=<a&b>\n", want: Data{"k": {"<a&b>"}}, wantJSON: `{"k":"\u003ca\u0026b\u003e"}`},
		{name: "url-encoded newline kept literally", out: "note=a%0Ab\n", want: Data{"note": {"a%0Ab"}}, wantJSON: `{"note":"a%0Ab"}`},
		{name: "three repeats", out: "m=1\nm=2\nm=1\n", want: Data{"m": {"1", "2", "1"}}, wantJSON: `{"m":["1","2","1"]}`},
		{name: "line without equals", out: "mac=a\ngarbage line\n", wantErr: ErrMalformed, wantMsg: []string{"line 2", `"garbage line"`}},
		{name: "carriage-return-only line is not empty", out: "mac=a\r\n\r\n", wantErr: ErrMalformed, wantMsg: []string{"line 2", `"\r"`}},
		{name: "empty key", out: "=value\n", wantErr: ErrMalformed, wantMsg: []string{"line 1", "empty key"}},
		{name: "invalid UTF-8 would collapse keys", out: "\x87=0\n\x84=1\n", wantErr: ErrMalformed, wantMsg: []string{"line 1", "not valid UTF-8"}},
		{name: "long bad line quoted in part", out: strings.Repeat("x", 500), wantErr: ErrMalformed, wantMsg: []string{"line 1", `xxx"...`}},
		{name: "no output", out: "", wantErr: ErrNoData},
		{name: "only empty lines", out: "\n\n\n", wantErr: ErrNoData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse([]byte(tt.out))
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Nil(t, d)
				for _, m := range tt.wantMsg {
					assert.Contains(t, err.Error(), m)
				}
				assert.Less(t, len(err.Error()), 300, "error quotes a bounded part of the line")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, d)
			assert.Equal(t, tt.wantJSON, d.JSON())
			var obj map[string]any
			require.NoError(t, json.Unmarshal([]byte(d.JSON()), &obj), "id_data is a JSON object")
		})
	}
}

func TestKeys(t *testing.T) {
	d := Data{"mac": {"a"}, "cpuid": {"1"}, "Zeta": {"z"}}
	assert.Equal(t, []string{"Zeta", "cpuid", "mac"}, d.Keys())
}

func TestDefaultScript(t *testing.T) {
	tests := []struct {
		name string
		env  string
		want string
	}{
		{name: "unset", env: "", want: "/usr/share/mender/identity/mender-device-identity"},
		{name: "set", env: "/opt/mender", want: "/opt/mender/identity/mender-device-identity"},
		{name: "trailing slash", env: "/opt/mender/", want: "/opt/mender/identity/mender-device-identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(DataDirEnv, tt.env)
			assert.Equal(t, filepath.Clean(tt.want), DefaultScript())
		})
	}
}

func BenchmarkParseAndJSON(b *testing.B) {
	out := []byte("mac=02:12:61:13:6c:42\nmac=02:12:61:13:6c:43\ncpuid=1234\nserialno=ABC-123\n")
	b.ReportAllocs()
	for b.Loop() {
		d, err := Parse(out)
		if err != nil {
			b.Fatal(err)
		}
		_ = d.JSON()
	}
}
