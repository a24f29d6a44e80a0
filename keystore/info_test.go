package keystore

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestInfoOutput(t *testing.T) {
	k := testKey(t, TypeEd25519)
	k.info.Path = "/var/lib/mender/mender-agent.pem"
	info := k.Info()

	var text bytes.Buffer
	require.NoError(t, info.WriteText(&text))
	assert.Equal(t, "backend:     file\n"+
		"path:        /var/lib/mender/mender-agent.pem\n"+
		"type:        ed25519\n"+
		"fingerprint: "+k.Fingerprint()+"\n"+
		string(k.PublicKeyPEM()), text.String())

	var js bytes.Buffer
	require.NoError(t, info.WriteJSON(&js))
	assert.True(t, strings.HasSuffix(js.String(), "}\n"))
	var got map[string]string
	require.NoError(t, json.Unmarshal(js.Bytes(), &got))
	assert.Equal(t, map[string]string{
		"backend":     "file",
		"path":        "/var/lib/mender/mender-agent.pem",
		"type":        "ed25519",
		"fingerprint": k.Fingerprint(),
		"public_key":  string(k.PublicKeyPEM()),
	}, got)

	// Another backend describes its key the same way; no path line.
	other, err := NewInfo("tpm", "", testKey(t, TypeECDSAP256).Public())
	require.NoError(t, err)
	text.Reset()
	require.NoError(t, other.WriteText(&text))
	assert.True(t, strings.HasPrefix(text.String(), "backend:     tpm\ntype:        ecdsa-p256\nfingerprint: SHA256:"), text.String())

	_, err = NewInfo("tpm", "", "not a key")
	assert.ErrorIs(t, err, ErrUnsupportedKey)
}

func TestWriteProvision(t *testing.T) {
	k := testKey(t, TypeEd25519)
	info := k.Info()
	identity := "{\n  \"mac\": \"02:12:61:13:6c:42\",\n  \"serial\": [\"a\", \"b\"]\n}"
	tests := []struct {
		name     string
		format   string
		identity string
		want     string
		wantErr  string
	}{
		{name: "json", format: "json", identity: identity,
			want: `{"identity_data":{"mac":"02:12:61:13:6c:42","serial":["a","b"]},"pubkey":` + jsonString(t, string(k.PublicKeyPEM())) + "}\n"},
		{name: "csv", format: "csv", identity: identity,
			want: "identity_data,pubkey,fingerprint\n" +
				`"{""mac"":""02:12:61:13:6c:42"",""serial"":[""a"",""b""]}","` + string(k.PublicKeyPEM()) + `",` + k.Fingerprint() + "\n"},
		{name: "unknown format", format: "xml", identity: identity,
			wantErr: `provision: export format "xml" is not supported; use json or csv`},
		{name: "identity not json", format: "json", identity: "mac=02:12",
			wantErr: `provision: identity data "mac=02:12" is not a JSON object; check the identity script output`},
		{name: "identity not an object", format: "csv", identity: `["mac"]`,
			wantErr: `provision: identity data "[\"mac\"]" is not a JSON object; check the identity script output`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := WriteProvision(&out, tt.format, tt.identity, info)
			if tt.wantErr != "" {
				assert.EqualError(t, err, tt.wantErr)
				assert.Zero(t, out.Len(), "nothing is written on error")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, out.String())
		})
	}
}

func TestWriteProvisionRoundTrips(t *testing.T) {
	info := testKey(t, TypeECDSAP256).Info()
	var out bytes.Buffer
	require.NoError(t, WriteProvision(&out, ProvisionCSV, `{"mac":"x"}`, info))
	recs, err := csv.NewReader(&out).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, []string{`{"mac":"x"}`, info.PublicKeyPEM, info.Fingerprint}, recs[1])

	out.Reset()
	require.NoError(t, WriteProvision(&out, ProvisionJSON, `{"mac":"x"}`, info))
	var body struct {
		IdentityData map[string]string `json:"identity_data"`
		PubKey       string            `json:"pubkey"`
	}
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&body))
	assert.Equal(t, map[string]string{"mac": "x"}, body.IdentityData)
	assert.Equal(t, info.PublicKeyPEM, body.PubKey)
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestOutputWriteErrors(t *testing.T) {
	info := testKey(t, TypeEd25519).Info()
	assert.EqualError(t, info.WriteText(failWriter{}), "disk full")
	assert.EqualError(t, info.WriteJSON(failWriter{}), "disk full")
	assert.EqualError(t, WriteProvision(failWriter{}, ProvisionJSON, `{}`, info), "disk full")
}

func jsonString(t *testing.T, s string) string {
	t.Helper()
	b, err := json.Marshal(s)
	require.NoError(t, err)
	return string(b)
}
