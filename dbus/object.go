package dbus

import (
	godbus "github.com/godbus/dbus/v5"

	"github.com/mender-agent/mender-agent/agent"
)

// The names of io.mender.Authentication1, identical to the Mender client's.
const (
	// BusName is the well-known name the agent owns on the system bus.
	BusName = "io.mender.AuthenticationManager"
	// ObjectPath is the path of the exported object.
	ObjectPath = godbus.ObjectPath("/io/mender/AuthenticationManager")
	// Interface is the D-Bus interface the object implements.
	Interface = "io.mender.Authentication1"
	// SignalName is the member name of the token state signal.
	SignalName = "JwtTokenStateChange"

	introspectableInterface = "org.freedesktop.DBus.Introspectable"
)

// introspectXML describes the exported object: io.mender.Authentication1 with
// the Mender client's member and argument names, plus the standard
// interfaces godbus answers on every object.
const introspectXML = `<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node>
  <interface name="io.mender.Authentication1">
    <method name="GetJwtToken">
      <arg type="s" name="token" direction="out"/>
      <arg type="s" name="server_url" direction="out"/>
    </method>
    <method name="FetchJwtToken">
      <arg type="b" name="success" direction="out"/>
    </method>
    <signal name="JwtTokenStateChange">
      <arg type="s" name="token"/>
      <arg type="s" name="server_url"/>
    </signal>
  </interface>
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect">
      <arg type="s" name="xml_data" direction="out"/>
    </method>
  </interface>
  <interface name="org.freedesktop.DBus.Peer">
    <method name="Ping"/>
    <method name="GetMachineId">
      <arg type="s" name="machine_uuid" direction="out"/>
    </method>
  </interface>
</node>
`

// parentNodes lets tools such as `busctl tree` walk from / down to the
// object: each ancestor of ObjectPath introspects as a node with one child.
var parentNodes = map[godbus.ObjectPath]string{
	"/":          "io",
	"/io":        "mender",
	"/io/mender": "AuthenticationManager",
}

func parentXML(child string) string {
	return `<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node>
  <interface name="org.freedesktop.DBus.Introspectable">
    <method name="Introspect">
      <arg type="s" name="xml_data" direction="out"/>
    </method>
  </interface>
  <node name="` + child + `"/>
</node>
`
}

// introspectable answers org.freedesktop.DBus.Introspectable.Introspect with
// fixed XML.
type introspectable string

// Introspect returns the XML description of the object.
func (i introspectable) Introspect() (string, *godbus.Error) { return string(i), nil }

// methods is i's method table for godbus.Conn.ExportMethodTable.
func (i introspectable) methods() map[string]any {
	return map[string]any{"Introspect": i.Introspect}
}

// authObject is the exported io.mender.Authentication1 object; its
// methods are exported by name with godbus.Conn.ExportMethodTable, never
// with Export (see TestNoReflectMethod in cmd/mender-agent). godbus runs
// each call on its own goroutine; both methods only read memory or make a
// non-blocking request.
type authObject struct {
	svc      TokenService
	localURL func(agent.Token) string
}

// GetJwtToken returns the current token and the URL consumers send Device
// API requests to, or two empty strings when there is no token. It never
// waits for the network.
func (o authObject) GetJwtToken() (string, string, *godbus.Error) {
	jwt, url := o.state(o.svc.Current())
	return jwt, url, nil
}

// FetchJwtToken asks for an authentication attempt (joining one already
// pending or in progress) and returns at once; the outcome arrives as a
// JwtTokenStateChange signal. It returns false when the agent is shutting
// down and no attempt will follow.
func (o authObject) FetchJwtToken() (bool, *godbus.Error) {
	return o.svc.RequestRefresh(), nil
}

// state is the (token, server_url) pair consumers see for tok.
func (o authObject) state(tok agent.Token) (string, string) {
	if tok.IsZero() {
		return "", ""
	}
	return tok.JWT(), o.localURL(tok)
}
