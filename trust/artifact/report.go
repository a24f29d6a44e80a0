package artifact

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// Report describes a verified Artifact. It is a plain value, safe to share
// once Verify has returned it.
type Report struct {
	Name              string    `json:"name"`
	Group             string    `json:"group,omitempty"`
	Format            string    `json:"format"`
	Version           int       `json:"version"`
	Types             []string  `json:"types"`
	CompatibleDevices []string  `json:"compatible_devices"`
	DependsNames      []string  `json:"depends_artifact_name,omitempty"`
	DependsGroups     []string  `json:"depends_artifact_group,omitempty"`
	HeaderCompression string    `json:"header_compression"`
	Scripts           []string  `json:"scripts,omitempty"`
	Payloads          []Payload `json:"payloads"`
	// Signed reports whether the Artifact carries manifest.sig.
	Signed bool `json:"signed"`
	// SignatureVerified reports whether manifest.sig verified under one of
	// the configured keys (false only with Options.IntegrityOnly).
	SignatureVerified bool `json:"signature_verified"`
	// KeyIndex is the position in Options.Keys of the key that verified
	// the signature, or -1.
	KeyIndex     int    `json:"key_index"`
	KeyPath      string `json:"key_path,omitempty"`
	KeyAlgorithm string `json:"key_algorithm,omitempty"`
}

// Payload is one payload of the Artifact.
type Payload struct {
	Index int `json:"index"`
	// Type is the payload type ("rootfs-image", a module name), or "" for
	// the empty payload of a bootstrap Artifact.
	Type                   string            `json:"type"`
	Compression            string            `json:"compression,omitempty"`
	Files                  []File            `json:"files"`
	Provides               map[string]string `json:"artifact_provides,omitempty"`
	Depends                map[string]any    `json:"artifact_depends,omitempty"`
	ClearsArtifactProvides []string          `json:"clears_artifact_provides,omitempty"`
	MetaData               json.RawMessage   `json:"meta_data,omitempty"`
}

// File is one verified payload file.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// fill copies the parsed header into the report.
func (r *Report) fill(h *header, hc compression) {
	r.Name = h.info.ArtifactProvides.ArtifactName
	r.Group = h.info.ArtifactProvides.ArtifactGroup
	r.CompatibleDevices = h.info.ArtifactDepends.DeviceType
	r.DependsNames = h.info.ArtifactDepends.ArtifactName
	r.DependsGroups = h.info.ArtifactDepends.ArtifactGroup
	r.HeaderCompression = hc.Name()
	r.Scripts = h.scripts
	r.Payloads = make([]Payload, len(h.info.Payloads))
	for i, p := range h.info.Payloads {
		t := ""
		if p.Type != nil {
			t = *p.Type
		}
		r.Types = append(r.Types, t)
		ti := h.types[i]
		r.Payloads[i] = Payload{
			Index:                  i,
			Type:                   t,
			Files:                  []File{},
			Provides:               ti.ArtifactProvides,
			Depends:                ti.ArtifactDepends,
			ClearsArtifactProvides: ti.ClearsArtifactProvides,
		}
		if len(h.metaData[i]) > 0 {
			r.Payloads[i].MetaData = h.metaData[i]
		}
	}
}

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes a human summary of the report.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Artifact:\t%s\n", r.Name)
	if r.Group != "" {
		fmt.Fprintf(tw, "Group:\t%s\n", r.Group)
	}
	fmt.Fprintf(tw, "Format:\t%s v%d\n", r.Format, r.Version)
	fmt.Fprintf(tw, "Signature:\t%s\n", r.signatureText())
	fmt.Fprintf(tw, "Compatible devices:\t%s\n", strings.Join(r.CompatibleDevices, ", "))
	if len(r.DependsNames) > 0 {
		fmt.Fprintf(tw, "Depends on artifacts:\t%s\n", strings.Join(r.DependsNames, ", "))
	}
	if len(r.DependsGroups) > 0 {
		fmt.Fprintf(tw, "Depends on groups:\t%s\n", strings.Join(r.DependsGroups, ", "))
	}
	if len(r.Scripts) > 0 {
		fmt.Fprintf(tw, "State scripts:\t%s\n", strings.Join(r.Scripts, ", "))
	}
	for _, p := range r.Payloads {
		t := p.Type
		if t == "" {
			t = "(empty, bootstrap)"
		}
		fmt.Fprintf(tw, "Payload %d:\t%s (%s)\n", p.Index, t, orNone(p.Compression))
		for _, f := range p.Files {
			fmt.Fprintf(tw, "  %s\t%d bytes\tsha256 %s\n", f.Name, f.Size, f.SHA256)
		}
		for _, k := range slices.Sorted(maps.Keys(p.Provides)) {
			fmt.Fprintf(tw, "  provides\t%s=%s\n", k, p.Provides[k])
		}
	}
	return tw.Flush()
}

func (r *Report) signatureText() string {
	switch {
	case r.SignatureVerified && r.KeyPath != "":
		return fmt.Sprintf("verified with key %d (%s, %s)", r.KeyIndex+1, r.KeyPath, r.KeyAlgorithm)
	case r.SignatureVerified:
		return fmt.Sprintf("verified with key %d (%s)", r.KeyIndex+1, r.KeyAlgorithm)
	case r.Signed:
		return "present, not verified (no key)"
	}
	return "none (unsigned)"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
