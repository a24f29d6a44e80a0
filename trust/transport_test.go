package trust_test

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/trust"
)

// TestTransportKeepsConcurrentConnections sends two rounds of concurrent
// requests, as the forwarder's consumers do, and counts the connections
// dialled: the second round must reuse the first round's connections, not
// pay a new TCP and TLS handshake for all but two of them.
func TestTransportKeepsConcurrentConnections(t *testing.T) {
	const consumers = 8
	ca := newCA("CA")
	var (
		mu      sync.Mutex
		arrived chan struct{}
		release chan struct{}
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		a, rel := arrived, release
		mu.Unlock()
		a <- struct{}{}
		select {
		case <-rel:
		case <-r.Context().Done():
		}
		// No body: net/http returns the connection to the idle pool
		// before the caller sees the response, so the count below does
		// not depend on scheduling.
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert(ca).TLSCertificate()}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)

	l, _ := newLogger()
	s, err := trust.New(baseConfig(bundleFile(t, ca), l))
	require.NoError(t, err)
	tr := s.Transport()
	t.Cleanup(tr.CloseIdleConnections)
	var dials atomic.Int32
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return dial(ctx, network, addr)
	}
	client := &http.Client{Transport: tr}

	for round := 1; round <= 2; round++ {
		mu.Lock()
		arrived, release = make(chan struct{}, consumers), make(chan struct{})
		a, rel := arrived, release
		mu.Unlock()
		errs := make(chan error, consumers)
		for range consumers {
			go func() {
				resp, err := client.Get(srv.URL + "/api/devices/v1/inventory/device/attributes")
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				errs <- err
			}()
		}
		for range consumers {
			<-a // all requests are in flight at once
		}
		close(rel)
		for range consumers {
			require.NoError(t, <-errs)
		}
		assert.Equal(t, int32(consumers), dials.Load(), "connections dialled after round %d", round)
	}
}
