package dbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/sirupsen/logrus"

	"github.com/mender-agent/mender-agent/agent"
)

// Log field names used by this package.
const (
	fieldBusAddress = "bus_address"
	fieldBusName    = "bus_name"
	fieldRetryIn    = "retry_in"
	fieldAuthorized = "authorized"
	fieldServerURL  = "server_url"
)

// Defaults for Config fields left zero.
const (
	DefaultReconnectMin = 100 * time.Millisecond
	DefaultReconnectMax = 10 * time.Second
	// defaultSystemBusAddress is where the system bus listens when
	// DBUS_SYSTEM_BUS_ADDRESS is not set (the D-Bus specification's
	// default).
	defaultSystemBusAddress = "unix:path=/var/run/dbus/system_bus_socket"
	// connectTimeout bounds one connection attempt (authentication, Hello,
	// export and name request) so a bus that accepts but never answers
	// cannot stall the agent.
	connectTimeout = 25 * time.Second
	// releaseTimeout bounds releasing the name on shutdown.
	releaseTimeout = 2 * time.Second
)

// ErrNameTaken means another process already owns
// io.mender.AuthenticationManager (the Mender client's mender-auth, or a
// second agent). Serve returns it instead of queueing for the name.
var ErrNameTaken = errors.New("D-Bus name already owned by another process")

// ErrNameDenied means the bus policy does not let this process own
// io.mender.AuthenticationManager: the policy file is not installed or the
// agent is not running as root.
var ErrNameDenied = errors.New("D-Bus policy denies owning the name")

// TokenService is the part of the agent the D-Bus adapter uses.
type TokenService interface {
	// Current returns the cached token, or the zero Token; it never blocks
	// on I/O.
	Current() agent.Token
	// RequestRefresh asks for an authentication attempt without waiting for
	// it; it returns false once the service is shutting down.
	RequestRefresh() bool
	// Subscribe delivers one Result per completed authentication attempt
	// until ctx is done, then closes the channel.
	Subscribe(ctx context.Context) <-chan agent.Result
}

// Config configures a Server.
type Config struct {
	// Service provides the token. Required.
	Service TokenService
	// LocalURL returns the server URL handed to consumers together with a
	// token (the loopback forwarder's URL). Nil means the token's own
	// ServerURL. It is called from D-Bus handler goroutines and must not
	// block.
	LocalURL func(agent.Token) string
	// Address is the D-Bus address of the bus to serve on. Empty means the
	// system bus: DBUS_SYSTEM_BUS_ADDRESS, or the default system bus socket.
	Address string
	// Logger receives the server's log lines. Nil discards them.
	Logger logrus.FieldLogger
	// ReconnectMin and ReconnectMax bound the exponential backoff between
	// connection attempts after the bus goes away. Zero means
	// DefaultReconnectMin and DefaultReconnectMax.
	ReconnectMin, ReconnectMax time.Duration
}

// Server exports io.mender.Authentication1 on a bus. Create it with New and
// run it with Serve. Its methods are safe for concurrent use; Serve runs at
// most once at a time.
type Server struct {
	svc      TokenService
	localURL func(agent.Token) string
	address  string
	log      logrus.FieldLogger
	min, max time.Duration
	serving  atomic.Bool
}

// New checks cfg and returns a Server. It does no I/O and starts no
// goroutines.
func New(cfg Config) (*Server, error) {
	if cfg.Service == nil {
		return nil, errors.New("dbus server config: Service is nil; pass the agent")
	}
	s := &Server{
		svc:      cfg.Service,
		localURL: cfg.LocalURL,
		address:  cfg.Address,
		log:      cfg.Logger,
		min:      cfg.ReconnectMin,
		max:      cfg.ReconnectMax,
	}
	if s.localURL == nil {
		s.localURL = func(t agent.Token) string { return t.ServerURL }
	}
	if s.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		s.log = l
	}
	if s.min == 0 {
		s.min = DefaultReconnectMin
	}
	if s.max == 0 {
		s.max = DefaultReconnectMax
	}
	if s.min < 0 || s.max < s.min {
		return nil, fmt.Errorf("dbus server config: ReconnectMin %s and ReconnectMax %s: want 0 < min <= max", s.min, s.max)
	}
	return s, nil
}

// systemBusAddress is the address of the system bus as libdbus finds it.
func systemBusAddress() string {
	if a := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
		return a
	}
	return defaultSystemBusAddress
}

// Serve connects to the bus, exports the object, owns BusName and emits
// JwtTokenStateChange for every completed authentication attempt until ctx
// is done. When the bus connection drops it reconnects with exponential
// backoff, owns the name again and emits the current state, so consumers
// that were waiting for a signal are not left hanging.
//
// Serve returns ErrNameTaken when another process owns the name,
// ErrNameDenied when the bus policy refuses it, and ctx.Err() after ctx is
// done; it releases the name and closes its connection before returning.
// Transient failures to reach the bus are retried, never returned.
func (s *Server) Serve(ctx context.Context) error {
	if !s.serving.CompareAndSwap(false, true) {
		return errors.New("dbus server: Serve is already running")
	}
	defer s.serving.Store(false)

	address := s.address
	if address == "" {
		address = systemBusAddress()
	}
	log := s.log.WithField(fieldBusAddress, address)

	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Subscribe before connecting so no attempt completed meanwhile is lost.
	results := s.svc.Subscribe(subCtx)

	delay := s.min
	reconnecting := false
	for {
		conn, err := s.connect(ctx, address)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrNameTaken), errors.Is(err, ErrNameDenied):
			return err
		default:
			log.WithError(err).WithField(fieldRetryIn, delay).Warn("cannot serve on the bus; retrying")
			if err := drainUntil(ctx, results, delay); err != nil {
				return err
			}
			delay = nextDelay(delay, s.min, s.max)
			reconnecting = true
			continue
		}
		delay = s.min
		log.WithField(fieldBusName, BusName).Info("serving io.mender.Authentication1 on the bus")
		obj := authObject{svc: s.svc, localURL: s.localURL}
		if reconnecting {
			// Consumers may have missed signals while the bus was away.
			jwt, url := obj.state(s.svc.Current())
			s.emit(conn, log, jwt, url)
		}
		reconnecting = true
		if err := s.session(ctx, conn, log, obj, results); err != nil {
			return err
		}
	}
}

// session emits a signal per result until ctx is done (it then releases the
// name and returns ctx.Err()) or the connection drops (it returns nil).
func (s *Server) session(ctx context.Context, conn *godbus.Conn, log logrus.FieldLogger, obj authObject, results <-chan agent.Result) error {
	for {
		select {
		case <-ctx.Done():
			release(conn, log)
			return ctx.Err()
		case <-conn.Context().Done():
			log.Warn("lost the bus connection; reconnecting")
			return nil
		case r, ok := <-results:
			if !ok {
				release(conn, log)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return errors.New("dbus server: the token service closed its subscription")
			}
			// The signal reports the state after the attempt. A failed
			// attempt that left a valid token in place (the server was
			// briefly unreachable during an early renewal) re-announces
			// that token: consumers such as mender-connect end their
			// sessions on empty strings, which must mean "not
			// authorized", as it does after a 401.
			tok := r.Token
			if r.Err != nil {
				tok = s.svc.Current()
			}
			jwt, url := obj.state(tok)
			s.emit(conn, log, jwt, url)
		}
	}
}

func (s *Server) emit(conn *godbus.Conn, log logrus.FieldLogger, jwt, url string) {
	err := conn.Emit(ObjectPath, Interface+"."+SignalName, jwt, url)
	if err != nil {
		// A closed connection is noticed by session, which reconnects and
		// emits the current state again.
		log.WithError(err).Warn("cannot emit JwtTokenStateChange")
		return
	}
	log.WithField(fieldAuthorized, jwt != "" && url != "").WithField(fieldServerURL, url).Debug("emitted JwtTokenStateChange")
}

// connect opens a connection, exports the object and owns the name.
func (s *Server) connect(ctx context.Context, address string) (*godbus.Conn, error) {
	attemptCtx, cancelAttempt := context.WithTimeout(ctx, connectTimeout)
	defer cancelAttempt()
	// The connection outlives ctx so the name can be released on shutdown;
	// during the attempt, ctx or the timeout closes it to unblock
	// authentication.
	connCtx, closeConn := context.WithCancel(context.Background())
	stop := context.AfterFunc(attemptCtx, closeConn)
	conn, err := godbus.Connect(address, godbus.WithContext(connCtx))
	if err != nil {
		closeConn()
		return nil, fmt.Errorf("connect to the bus at %s: %w", address, err)
	}
	fail := func(err error) (*godbus.Conn, error) {
		_ = conn.Close()
		closeConn()
		return nil, err
	}
	obj := authObject{svc: s.svc, localURL: s.localURL}
	// Method tables, not Export: Export finds methods with
	// reflect.Value.Method, which makes the linker keep every exported
	// method of every type in the binary (about 1.4 MB on armv7).
	methods := map[string]any{"GetJwtToken": obj.GetJwtToken, "FetchJwtToken": obj.FetchJwtToken}
	if err := conn.ExportMethodTable(methods, ObjectPath, Interface); err != nil {
		return fail(fmt.Errorf("export %s at %s: %w", Interface, ObjectPath, err))
	}
	if err := conn.ExportMethodTable(introspectable(introspectXML).methods(), ObjectPath, introspectableInterface); err != nil {
		return fail(fmt.Errorf("export %s at %s: %w", introspectableInterface, ObjectPath, err))
	}
	for path, child := range parentNodes {
		if err := conn.ExportMethodTable(introspectable(parentXML(child)).methods(), path, introspectableInterface); err != nil {
			return fail(fmt.Errorf("export %s at %s: %w", introspectableInterface, path, err))
		}
	}
	if err := requestName(attemptCtx, conn); err != nil {
		return fail(err)
	}
	if !stop() {
		// The attempt ended (ctx done or timed out) while the name was being
		// acquired: the connection is already closing.
		return fail(fmt.Errorf("connect to the bus at %s: %w", address, context.Cause(attemptCtx)))
	}
	go func() {
		// Tie connCtx to the connection so closeConn is never leaked.
		<-conn.Context().Done()
		closeConn()
	}()
	return conn, nil
}

// requestName owns BusName without queueing: if another process holds it,
// the agent must not silently wait behind it.
func requestName(ctx context.Context, conn *godbus.Conn) error {
	var reply uint32
	err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.RequestName", 0, BusName, uint32(godbus.NameFlagDoNotQueue)).Store(&reply)
	var dbusErr godbus.Error
	if errors.As(err, &dbusErr) && dbusErr.Name == "org.freedesktop.DBus.Error.AccessDenied" {
		return fmt.Errorf("own %s: %w (%v); install io.mender.AuthenticationManager.conf in /usr/share/dbus-1/system.d and run the agent as root", BusName, ErrNameDenied, err)
	}
	if err != nil {
		return fmt.Errorf("own %s: %w", BusName, err)
	}
	switch godbus.RequestNameReply(reply) {
	case godbus.RequestNameReplyPrimaryOwner, godbus.RequestNameReplyAlreadyOwner:
		return nil
	case godbus.RequestNameReplyExists:
		return fmt.Errorf("own %s: %w (%s); stop mender-authd/mender-client or the other mender-agent first", BusName, ErrNameTaken, describeOwner(ctx, conn))
	default:
		return fmt.Errorf("own %s: unexpected RequestName reply %d", BusName, reply)
	}
}

// describeOwner names the current owner of BusName for an error message.
func describeOwner(ctx context.Context, conn *godbus.Conn) string {
	var owner string
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, BusName).Store(&owner); err != nil {
		return "owner unknown"
	}
	var pid uint32
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionUnixProcessID", 0, owner).Store(&pid); err != nil {
		return "owner " + owner
	}
	return fmt.Sprintf("owner %s, pid %d", owner, pid)
}

// release gives the name back and closes the connection.
func release(conn *godbus.Conn, log logrus.FieldLogger) {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	var reply uint32
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.ReleaseName", 0, BusName).Store(&reply); err != nil {
		log.WithError(err).Debug("cannot release the bus name; closing the connection drops it")
	}
	_ = conn.Close()
}

// drainUntil waits for d, discarding results meanwhile (the state is
// re-emitted after reconnecting) so the token service never blocks on this
// subscriber.
func drainUntil(ctx context.Context, results <-chan agent.Result, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		case _, ok := <-results:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return errors.New("dbus server: the token service closed its subscription")
			}
		}
	}
}

// nextDelay doubles d within [min, max].
func nextDelay(d, lo, hi time.Duration) time.Duration {
	d *= 2
	if d < lo {
		return lo
	}
	if d > hi {
		return hi
	}
	return d
}
