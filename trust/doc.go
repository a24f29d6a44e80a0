// Package trust owns the agent's TLS trust towards the Mender server: the
// root pool (the system roots plus every certificate in the configured
// ServerCertificate bundle), the optional mutual-TLS client certificate, the
// proxy settings taken from the environment, and the explanation of TLS
// failures in words an operator can act on.
//
// A Store re-reads the bundle and the client certificate and key whenever the
// files change, before the next connection, so a rotated server CA or a
// renewed client certificate takes effect without restarting the daemon; a
// broken replacement keeps the last good set. Store hands out *tls.Config,
// *http.Transport and *http.Client values for the edges (the auth API client
// and the loopback forwarder) and runs the connectivity checks behind
// `mender-agent check`.
//
// Package trust is a leaf: it imports the standard library and logrus only,
// and must never import the agent core,
// godbus or go-tpm (a TPM key arrives as a crypto.Signer through Config).
// Artifact signature verification lives in the separate package
// trust/artifact.
package trust
