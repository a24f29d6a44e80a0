package artifact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/mender-agent/mender-agent/trust/artifact/artifacttest"
)

// fuzzSeeds are small generated Artifacts covering every compression, a
// bootstrap and a multi-payload Artifact with scripts and meta-data.
func fuzzSeeds(t testing.TB) [][]byte {
	ec, _ := ecKeys(t)
	var seeds [][]byte
	for _, c := range []string{"none", "gzip", "xz", "zstd"} {
		seeds = append(seeds, build(t, rootfs(ec.priv, c, pattern(700))))
	}
	seeds = append(seeds, build(t, artifacttest.Artifact{Name: "b", Devices: []string{"d"}, Compression: "none", Payloads: []artifacttest.Payload{{}}}))
	seeds = append(seeds, build(t, artifacttest.Artifact{Name: "m", Devices: []string{"d", "e"}, Compression: "none",
		Scripts: map[string][]byte{"ArtifactCommit_Leave_10": []byte("#!/bin/sh\n")},
		Payloads: []artifacttest.Payload{
			{Type: "a", Files: []artifacttest.File{artifacttest.Bytes("x", []byte("1")), artifacttest.Bytes("y", nil)}, MetaData: []byte(`{"k":[1,"v"]}`)},
			{Type: "b", Files: []artifacttest.File{artifacttest.Bytes("z", []byte("22"))}},
		}}))
	return seeds
}

func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	ec, _ := ecKeys(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		// Unsigned-looking inputs (odd length) run integrity-only, so the
		// fuzzer gets past the signature check to the header and payloads.
		integrityOnly := len(data)%2 == 1
		opts := Options{Keys: []PublicKey{ec.pub}}
		if integrityOnly {
			opts = Options{IntegrityOnly: true}
		}
		rep, err := Verify(context.Background(), bytes.NewReader(data), opts)
		if err != nil {
			// Reading from memory cannot fail: every error is a verdict.
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("non-verdict error from an in-memory reader: %v", err)
			}
			if rep != nil {
				t.Fatal("report returned with an error")
			}
			return
		}
		if rep.Name == "" || len(rep.CompatibleDevices) == 0 || len(rep.Payloads) == 0 {
			t.Fatalf("valid artifact with an incomplete report: %+v", rep)
		}
		if !integrityOnly && !rep.SignatureVerified {
			t.Fatal("accepted without a verified signature")
		}
		if err := rep.WriteJSON(io.Discard); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzManifest(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		ms, err := artifacttest.ReadMembers(bytes.NewReader(s))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ms[artifacttest.Find(ms, "manifest")].Data)
	}
	f.Add([]byte(strings.Repeat("a", 64) + "  data/0000/../x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseManifest(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		// A parsed manifest re-serialises to exactly its input: nothing
		// was skipped, trimmed or normalised.
		var b bytes.Buffer
		for _, e := range m.order {
			fmt.Fprintf(&b, "%x  %s\n", e.sum, e.path)
			if strings.Contains(e.path, "..") && strings.Contains(e.path, "/") && !strings.HasPrefix(e.path, "data/") {
				t.Fatalf("path %q accepted", e.path)
			}
		}
		if !bytes.Equal(b.Bytes(), data) {
			t.Fatalf("manifest does not round-trip:\n%q\n%q", data, b.Bytes())
		}
		if m.entries["version"] == nil || m.header == "" {
			t.Fatal("manifest without version or header accepted")
		}
	})
}

func FuzzHeader(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		ms, err := artifacttest.ReadMembers(bytes.NewReader(s))
		if err != nil {
			f.Fatal(err)
		}
		for _, m := range ms {
			if sfx, ok := strings.CutPrefix(m.Name, "header.tar"); ok {
				r, err := artifacttest.Decompress(bytes.NewReader(m.Data), sfx)
				if err != nil {
					f.Fatal(err)
				}
				raw, err := io.ReadAll(r)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(raw)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseHeader("header.tar", bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if len(h.types) != len(h.info.Payloads) || len(h.metaData) != len(h.types) {
			t.Fatalf("inconsistent header: %d payloads, %d type-info", len(h.info.Payloads), len(h.types))
		}
		for _, s := range h.scripts {
			if !scriptNameRE.MatchString(s) || strings.Contains(s, "/") {
				t.Fatalf("script %q accepted", s)
			}
		}
		r := &Report{}
		r.fill(h, compNone)
		if err := r.WriteText(io.Discard); err != nil {
			t.Fatal(err)
		}
	})
}
