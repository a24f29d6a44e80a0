package keystore

import (
	"bytes"
	"crypto"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// BackendFile is the Info.Backend of keys kept in a PEM file.
const BackendFile = "file"

// Info describes a device key for `mender-agent show-key` and for factory
// provisioning. Every backend (file, TPM) fills it the same way through
// NewInfo, so scripts see one format. Info holds no secret.
type Info struct {
	// Backend is where the private key lives: "file" or "tpm".
	Backend string `json:"backend"`
	// Path is the key file (or TPM key blob), if any.
	Path string `json:"path,omitempty"`
	// Type is the key type as named by KeyTypeOf.
	Type string `json:"type"`
	// Fingerprint is the SHA-256 of the SPKI DER, "SHA256:<hex>".
	Fingerprint string `json:"fingerprint"`
	// PublicKeyPEM is the SPKI "PUBLIC KEY" PEM with a trailing newline,
	// exactly as sent in auth requests.
	PublicKeyPEM string `json:"public_key"`
}

// NewInfo describes pub, held by the named backend at path.
func NewInfo(backend, path string, pub crypto.PublicKey) (Info, error) {
	typ, err := KeyTypeOf(pub)
	if err != nil {
		return Info{}, err
	}
	fp, err := Fingerprint(pub)
	if err != nil {
		return Info{}, err
	}
	p, err := PublicKeyPEM(pub)
	if err != nil {
		return Info{}, err
	}
	return Info{Backend: backend, Path: path, Type: typ, Fingerprint: fp, PublicKeyPEM: string(p)}, nil
}

// WriteText writes the human-readable show-key output:
//
//	backend:     file
//	path:        /var/lib/mender/mender-agent.pem
//	type:        ed25519
//	fingerprint: SHA256:3b0c…
//	-----BEGIN PUBLIC KEY-----
//	…
//	-----END PUBLIC KEY-----
//
// The path line is left out when Path is empty.
func (i Info) WriteText(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "backend:     %s\n", i.Backend)
	if i.Path != "" {
		fmt.Fprintf(&b, "path:        %s\n", i.Path)
	}
	fmt.Fprintf(&b, "type:        %s\n", i.Type)
	fmt.Fprintf(&b, "fingerprint: %s\n", i.Fingerprint)
	b.WriteString(i.PublicKeyPEM)
	if !strings.HasSuffix(i.PublicKeyPEM, "\n") {
		b.WriteByte('\n')
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteJSON writes show-key --json output: one indented JSON object with
// the fields backend, path (if any), type, fingerprint and public_key,
// followed by a newline.
func (i Info) WriteJSON(w io.Writer) error {
	out, err := json.MarshalIndent(i, "", "  ")
	if err != nil {
		return fmt.Errorf("encode key info: %w", err)
	}
	_, err = w.Write(append(out, '\n'))
	return err
}

// Provision export formats for WriteProvision.
const (
	ProvisionJSON = "json"
	ProvisionCSV  = "csv"
)

// provisionRecord is the body of the server's preauthorization request
// (POST /api/management/v2/devauth/devices).
type provisionRecord struct {
	IdentityData json.RawMessage `json:"identity_data"`
	PubKey       string          `json:"pubkey"`
}

// WriteProvision writes what factory provisioning hands to the server's
// preauthorization, for one device:
//
//   - "json": one line holding {"identity_data":{...},"pubkey":"..."},
//     exactly the body of POST /api/management/v2/devauth/devices, so the
//     output of many devices concatenates into a JSON-lines file that a
//     script posts line by line;
//   - "csv": a header line "identity_data,pubkey,fingerprint" and one
//     record (RFC 4180 quoting; identity_data as compact JSON, pubkey as
//     the PEM text). Drop the header (`tail -n +2`) when concatenating.
//
// identityJSON is the identity data as a JSON object, as the identity
// script's output is sent in auth requests. An unknown format or identity
// data that is not a JSON object is an error and nothing is written.
func WriteProvision(w io.Writer, format, identityJSON string, info Info) error {
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(identityJSON)); err != nil || !bytes.HasPrefix(compact.Bytes(), []byte("{")) {
		return fmt.Errorf("provision: identity data %q is not a JSON object; check the identity script output", truncate(identityJSON, 80))
	}
	if info.PublicKeyPEM == "" {
		return fmt.Errorf("provision: key info has no public key")
	}
	var out bytes.Buffer
	switch format {
	case ProvisionJSON:
		line, err := json.Marshal(provisionRecord{IdentityData: compact.Bytes(), PubKey: info.PublicKeyPEM})
		if err != nil {
			return fmt.Errorf("provision: encode record: %w", err)
		}
		out.Write(line)
		out.WriteByte('\n')
	case ProvisionCSV:
		cw := csv.NewWriter(&out)
		_ = cw.Write([]string{"identity_data", "pubkey", "fingerprint"})
		_ = cw.Write([]string{compact.String(), info.PublicKeyPEM, info.Fingerprint})
		cw.Flush()
		if err := cw.Error(); err != nil {
			return fmt.Errorf("provision: encode csv: %w", err)
		}
	default:
		return fmt.Errorf("provision: export format %q is not supported; use %s or %s", format, ProvisionJSON, ProvisionCSV)
	}
	_, err := w.Write(out.Bytes())
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
