// Command mender-testserver runs the Device Authentication stand-in of
// test/authserver on loopback, for `make run` and manual experiments. It is
// not shipped.
//
//	mender-testserver -tls-dir DIR -auto-accept -token-lifetime 2m -ready-file DIR/url
//
// With -tls-dir it makes a throw-away CA and a server certificate for
// 127.0.0.1/localhost and writes DIR/ca.crt (give it to the agent as
// ServerCertificate). With -cert/-key it serves an existing certificate.
// Without either it serves plain HTTP. Once listening it writes its base
// URL to -ready-file. It logs every device it sees and every token it
// issues (never the token itself), and stops on SIGINT or SIGTERM.
//
// Devices are accepted with -auto-accept, or by hand through the minimal
// management API:
//
//	curl --cacert DIR/ca.crt URL/api/management/v2/devauth/devices
//	curl --cacert DIR/ca.crt -X PUT -d '{"status":"accepted"}' URL/api/management/v2/devauth/devices/ID/status
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mender-agent/mender-agent/internal/atomicfile"
	"github.com/mender-agent/mender-agent/test/authserver"
	"github.com/mender-agent/mender-agent/test/testpki"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "mender-testserver:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New("usage error")

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mender-testserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		listen      = fs.String("listen", "127.0.0.1:0", "address to listen on (loopback only unless -allow-remote)")
		allowRemote = fs.Bool("allow-remote", false, "allow a non-loopback -listen address")
		certFile    = fs.String("cert", "", "server certificate PEM (with -key)")
		keyFile     = fs.String("key", "", "server private key PEM (with -cert)")
		tlsDir      = fs.String("tls-dir", "", "make a CA and server certificate, writing ca.crt, server.crt and server.key here")
		autoAccept  = fs.Bool("auto-accept", false, "accept every new device at once")
		lifetime    = fs.Duration("token-lifetime", authserver.DefaultTokenLifetime, "lifetime of issued tokens")
		readyFile   = fs.String("ready-file", "", "write the server URL to this file once listening")
		tenantToken = fs.String("tenant-token", "", "accept only devices sending this tenant token")
		debug       = fs.Bool("debug", false, "log every request")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "mender-testserver: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if err := checkLoopback(*listen, *allowRemote); err != nil {
		fmt.Fprintln(stderr, "mender-testserver:", err)
		return errUsage
	}
	if (*certFile == "") != (*keyFile == "") || (*certFile != "" && *tlsDir != "") {
		fmt.Fprintln(stderr, "mender-testserver: give both -cert and -key, or -tls-dir, or neither")
		return errUsage
	}

	log := logrus.New()
	log.SetOutput(stderr)
	if *debug {
		log.SetLevel(logrus.DebugLevel)
	}
	var tlsConf *tls.Config
	switch {
	case *tlsDir != "":
		c, err := makeTLS(*tlsDir)
		if err != nil {
			return err
		}
		tlsConf = c
	case *certFile != "":
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("load server certificate %s and key %s: %w", *certFile, *keyFile, err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	srv := authserver.New(authserver.Options{
		TLS:           tlsConf,
		AutoAccept:    *autoAccept,
		TokenLifetime: *lifetime,
		TenantToken:   *tenantToken,
		Logger:        log.WithField("component", "testserver"),
	})
	if err := srv.Start(*listen); err != nil {
		return err
	}
	defer srv.Close()
	log.Infof("listening on %s (auto-accept %v, token lifetime %s)", srv.URL(), *autoAccept, *lifetime)
	if *readyFile != "" {
		if err := atomicfile.WriteFile(*readyFile, []byte(srv.URL()+"\n"), 0o644); err != nil {
			return fmt.Errorf("write ready file: %w", err)
		}
	}
	<-ctx.Done()
	log.Info("stopping")
	return nil
}

func checkLoopback(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-listen %q: %v", addr, err)
	}
	if allowRemote || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %q is not a loopback address; add -allow-remote to expose the test server", addr)
	}
	return nil
}

// makeTLS makes a CA and a server certificate for localhost, 127.0.0.1 and
// ::1 valid for a year, and writes ca.crt, server.crt and server.key to dir.
func makeTLS(dir string) (*tls.Config, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create -tls-dir %s: %w", dir, err)
	}
	ca := testpki.NewCA("mender-testserver CA")
	now := time.Now()
	leaf := ca.Issue(testpki.Options{CommonName: "localhost", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour)})
	for name, data := range map[string][]byte{
		"ca.crt":     ca.CertPEM(),
		"server.crt": leaf.CertPEM(),
		"server.key": leaf.KeyPEM(),
	} {
		if err := atomicfile.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
	}
	return &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}, MinVersion: tls.VersionTLS12}, nil
}
