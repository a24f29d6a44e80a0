// Package dbus serves the device's authentication token to other processes
// on the system bus through io.mender.Authentication1, the D-Bus interface
// of the Mender client's authentication daemon, kept exactly: the well-known
// name io.mender.AuthenticationManager, the object
// /io/mender/AuthenticationManager, the methods GetJwtToken and
// FetchJwtToken and the signal JwtTokenStateChange. It also holds the client
// side of that interface used by `mender-agent token`.
//
// The package is a thin adapter: it exports a dedicated object whose only
// methods are the interface's, answers from the token service's memory,
// turns every completed authentication attempt into one signal, and
// reconnects and owns the name again when the bus goes away. It declares the
// TokenService interface it consumes.
//
// It imports the standard library, logrus, godbus (always under the name
// godbus, since this package is also called dbus) and the agent package for
// the Token and Result types only. It must never import the forwarder, the
// trust or key packages, or net/http: the server URL it hands out comes from
// Config.LocalURL.
package dbus
