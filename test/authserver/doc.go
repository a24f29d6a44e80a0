// Package authserver is a stand-in for the Mender server's Device
// Authentication service and a few device APIs, for tests and `make run`. It
// verifies auth requests the way the real server does (mender-protocol.md
// §1.5: JSON body, id_data as a JSON string holding an object, SPKI public
// key, X-MEN-Signature over the exact body bytes for RSA, ECDSA and Ed25519
// keys), keeps devices pending, accepts, rejects, preauthorizes and
// decommissions them, optionally requires a tenant token, issues EdDSA JWTs
// with a configurable lifetime, checks "Authorization: Bearer" on the device
// API endpoints (inventory, deployments, a WebSocket echo at the
// deviceconnect path, an upload sink and an echo endpoint), and injects
// faults: error statuses, Retry-After, delays, dropped connections and whole
// outages.
//
// It is test infrastructure: shipped code must not import it. It imports
// the standard library and logrus only, so that it can stand in for the
// server in any package's tests without import cycles.
package authserver
