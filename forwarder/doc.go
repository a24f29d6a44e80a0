// Package forwarder is the loopback HTTP forwarder that local consumers of
// the device's token (mender-update, mender-connect and its add-ons,
// customer services) send their Device API requests to. It listens on
// 127.0.0.1, its URL is the server_url the D-Bus API hands out, and it
// forwards every method, path, header and streamed body, WebSocket
// upgrades included, to the server that issued the token, over the
// device's TLS trust configuration. It refuses the device authentication
// API so local processes cannot authenticate as the device through it.
//
// It imports the standard library, logrus and the agent package (for the
// Token type only). It must never import godbus, the dbus package or the
// key packages: the transport to the server is injected.
package forwarder
