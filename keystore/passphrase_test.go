package keystore

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadPassphrase(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		arg     string
		file    string // content written to dir/pass when arg is "file"
		stdin   string
		want    string
		wantErr string
	}{
		{name: "file with newline", arg: "file", file: "s3cret\n", want: "s3cret"},
		{name: "file with crlf", arg: "file", file: "s3cret\r\n", want: "s3cret"},
		{name: "file without newline", arg: "file", file: "s3cret", want: "s3cret"},
		{name: "only the first line", arg: "file", file: "first\nsecond\n", want: "first"},
		{name: "spaces kept", arg: "file", file: " two words \n", want: " two words "},
		{name: "stdin", arg: "-", stdin: "from stdin\n", want: "from stdin"},
		{name: "empty file", arg: "file", file: "", wantErr: "passphrase from %s is empty"},
		{name: "empty first line", arg: "file", file: "\nsecond\n", wantErr: "passphrase from %s is empty"},
		{name: "empty stdin", arg: "-", stdin: "", wantErr: "passphrase from stdin is empty"},
		{name: "missing file", arg: filepath.Join(dir, "missing"), wantErr: "read passphrase file: open %s: no such file or directory"},
		{name: "no name", arg: "", wantErr: "passphrase file name is empty; give a file, or - for stdin"},
		{name: "too long", arg: "-", stdin: strings.Repeat("x", maxPassphraseSize+10), wantErr: "read passphrase from stdin: first line longer than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arg := tt.arg
			if arg == "file" {
				arg = writeFile(t, t.TempDir(), "pass", []byte(tt.file), 0o600)
			}
			got, err := ReadPassphrase(arg, strings.NewReader(tt.stdin))
			if tt.wantErr != "" {
				want := tt.wantErr
				if strings.Contains(want, "%s") {
					want = fmt.Sprintf(want, arg)
				}
				assert.EqualError(t, err, want)
				if tt.file != "" {
					assert.NotContains(t, err.Error(), strings.TrimSpace(tt.file), "errors never carry the passphrase")
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, string(got))
		})
	}
}
