// Package artifact verifies Mender Artifacts (format version 3) as a
// stream: the manifest signature against a list of trusted public keys, the
// header hash before the header is parsed, and every payload file's SHA-256
// while it streams to a caller-supplied sink, in constant memory.
//
// It owns the artifact container rules (member order, names, sizes,
// compression), the signature schemes accepted for `manifest.sig` (RSA
// PKCS#1 v1.5 with SHA-256 for keys of 2048 bits or more, ECDSA P-256 with
// SHA-256 as raw r||s or ASN.1 DER) and the loading of PEM verification keys.
// Format version 2 is refused: the device client reads only version 3, and
// mender-artifact writes version 3 by default.
//
// Policy decisions that go beyond the format description:
//   - manifest-augment and header-augment members are refused: they are not
//     covered by the signature.
//   - The outer tar must end with its end-of-archive marker. Only zero bytes
//     may follow it (tar record padding, at most [MaxTrailingZeros]); any other
//     trailing byte rejects the Artifact, so nothing unsigned rides along.
//     The same holds for the data after the end of each inner tar and after
//     each compressed stream.
//   - A type-info `"type":""` is accepted only for a rootfs-image payload:
//     mender-artifact up to 4.3 writes it for every rootfs-image. Any other
//     mismatch between header-info and type-info rejects the Artifact.
//   - The manifest is parsed exactly: 64 lowercase hex digits, two spaces,
//     a path, "\n" on every line including the last; no duplicates; paths
//     are version, header.tar[.gz|.xz|.zst] or data/NNNN/<name> with <name>
//     in [A-Za-z0-9_.,-]. JSON documents are decoded strictly: unknown
//     fields, duplicate keys and trailing data are refused.
//   - Data members must be data/0000.tar<sfx>, data/0001..., in order, one
//     per header-info payload; a trailing payload without files may omit
//     its member (bootstrap Artifacts). Each inner entry is a regular file
//     with a bare name listed in the manifest, seen once; every manifest
//     line must be used exactly once.
//   - manifest.sig is standard base64 (line breaks are ignored, as the
//     standard library does). ECDSA signatures are accepted as 64-byte
//     big-endian r||s (what mender-artifact writes) or ASN.1 DER of any
//     length; high-S values are accepted like every Mender verifier does;
//     little-endian r||s is not.
//   - Bounds: version 4 KiB, manifest 1 MiB, manifest.sig 4 KiB, header
//     4 MiB compressed and 16 MiB decompressed, each header JSON 1 MiB, xz
//     dictionary and zstd window 64 MiB. Payload files are bounded by their
//     signed sizes and optionally by Options.MaxPayloadSize.
//
// Verification never trusts an unsigned byte: the manifest is parsed only
// after its signature verified, and the header is decompressed only after
// its hash matched. Payload bytes reach the sink before their hash is known;
// the caller must stage them and commit only when Verify returns nil.
//
// The package imports the standard library, logrus, klauspost/compress and
// ulikunitz/xz only. It must not import agent, dbus, tpm or any network
// package.
package artifact
