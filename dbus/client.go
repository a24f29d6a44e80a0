package dbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

// ErrNoAgent means nothing owns io.mender.AuthenticationManager on the bus:
// the agent is not running (or has not connected yet).
var ErrNoAgent = errors.New("no authentication agent on the bus")

// ErrAccessDenied means the bus policy refuses this caller; by default only
// root may talk to the agent.
var ErrAccessDenied = errors.New("D-Bus policy denies access to the authentication agent")

// ErrAuthFailed means the authentication attempt completed without a token
// (JwtTokenStateChange carried empty strings); the agent's log says why.
var ErrAuthFailed = errors.New("authentication attempt failed")

// ErrFetchRefused means the agent did not start an authentication attempt
// (FetchJwtToken returned false), for example because it is shutting down.
var ErrFetchRefused = errors.New("agent refused to start an authentication attempt")

// Dial connects to the bus at address and authenticates; an empty address
// means the system bus (DBUS_SYSTEM_BUS_ADDRESS, or the default system bus
// socket). The caller owns the connection and must Close it.
func Dial(address string) (*godbus.Conn, error) {
	if address == "" {
		address = systemBusAddress()
	}
	conn, err := godbus.Connect(address)
	if err != nil {
		return nil, fmt.Errorf("connect to the bus at %s: %w", address, err)
	}
	return conn, nil
}

// GetToken calls GetJwtToken: it returns the agent's current token and the
// URL to send Device API requests to, or two empty strings when the device
// is not authorized. It never starts an authentication.
func GetToken(ctx context.Context, conn *godbus.Conn) (token, url string, err error) {
	err = conn.Object(BusName, ObjectPath).CallWithContext(ctx, Interface+".GetJwtToken", 0).Store(&token, &url)
	if err != nil {
		return "", "", callError("GetJwtToken", err)
	}
	return token, url, nil
}

// FetchToken asks the agent to authenticate (FetchJwtToken) and waits up to
// wait for the JwtTokenStateChange that reports the outcome of that attempt
// (or of the one in progress it joined). It subscribes to the signal before
// calling, so the outcome cannot be missed. A failed attempt returns
// ErrAuthFailed. conn must not be shared with other signal consumers while
// FetchToken runs.
func FetchToken(ctx context.Context, conn *godbus.Conn, wait time.Duration) (token, url string, err error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()

	match := []godbus.MatchOption{
		godbus.WithMatchSender(BusName),
		godbus.WithMatchObjectPath(ObjectPath),
		godbus.WithMatchInterface(Interface),
		godbus.WithMatchMember(SignalName),
	}
	signals := make(chan *godbus.Signal, 16)
	conn.Signal(signals)
	defer conn.RemoveSignal(signals)
	if err := conn.AddMatchSignalContext(ctx, match...); err != nil {
		return "", "", fmt.Errorf("subscribe to %s.%s: %w", Interface, SignalName, err)
	}
	defer func() {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer rcancel()
		_ = conn.RemoveMatchSignalContext(rctx, match...)
	}()

	// Only the current owner's signals count; the bus lets anyone emit.
	var owner string
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, BusName).Store(&owner); err != nil {
		return "", "", callError("GetNameOwner", err)
	}
	var started bool
	if err := conn.Object(BusName, ObjectPath).CallWithContext(ctx, Interface+".FetchJwtToken", 0).Store(&started); err != nil {
		return "", "", callError("FetchJwtToken", err)
	}
	if !started {
		return "", "", ErrFetchRefused
	}
	for {
		select {
		case <-ctx.Done():
			return "", "", fmt.Errorf("wait for %s after FetchJwtToken: no signal within %s: %w", SignalName, wait, context.Cause(ctx))
		case sig, ok := <-signals:
			if !ok {
				return "", "", fmt.Errorf("wait for %s: %w", SignalName, godbus.ErrClosed)
			}
			if sig.Sender != owner || sig.Path != ObjectPath || sig.Name != Interface+"."+SignalName {
				continue
			}
			if len(sig.Body) != 2 {
				continue
			}
			token, ok1 := sig.Body[0].(string)
			url, ok2 := sig.Body[1].(string)
			if !ok1 || !ok2 {
				continue
			}
			if token == "" || url == "" {
				return "", "", ErrAuthFailed
			}
			return token, url, nil
		}
	}
}

// callError wraps a failed method call, translating the bus errors callers
// act on into ErrNoAgent and ErrAccessDenied.
func callError(method string, err error) error {
	var dbusErr godbus.Error
	if errors.As(err, &dbusErr) {
		switch dbusErr.Name {
		case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner":
			return fmt.Errorf("call %s on %s: %w (is mender-agent running?)", method, BusName, ErrNoAgent)
		case "org.freedesktop.DBus.Error.AccessDenied":
			return fmt.Errorf("call %s on %s: %w; run as root or allow your group in the D-Bus policy", method, BusName, ErrAccessDenied)
		}
	}
	return fmt.Errorf("call %s on %s: %w", method, BusName, err)
}
