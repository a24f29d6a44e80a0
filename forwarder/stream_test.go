package forwarder

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStreamsResponsesAsTheServerFlushes checks that a response that must
// stream reaches the consumer part by part: the server sends its second
// part only after the consumer has read the first one through the
// forwarder, so a forwarder that held the first part back would never
// finish (the test then fails at its timeout).
func TestStreamsResponsesAsTheServerFlushes(t *testing.T) {
	const first, second = "data: first\n\n", "data: second\n\n"
	tests := []struct {
		name        string
		contentType string
		knownLength bool
	}{
		{name: "event stream of unknown length", contentType: "text/event-stream"},
		{name: "event stream of known length", contentType: "text/event-stream; charset=utf-8", knownLength: true},
		{name: "download of unknown length", contentType: "application/octet-stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readFirst := make(chan struct{})
			p := newPKI(t)
			up := p.upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				if tt.knownLength {
					w.Header().Set("Content-Length", strconv.Itoa(len(first)+len(second)))
				}
				_, _ = io.WriteString(w, first)
				w.(http.Flusher).Flush()
				select {
				case <-readFirst:
				case <-r.Context().Done():
					return
				}
				_, _ = io.WriteString(w, second)
			}))
			f := startForwarder(t, p, Config{})
			require.NoError(t, f.SetUpstream(up.URL))

			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL()+"/api/devices/v1/deviceconnect/events", nil)
			require.NoError(t, err)
			resp, err := newClient(t).Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)

			br := bufio.NewReader(resp.Body)
			got := make([]byte, len(first))
			_, err = io.ReadFull(br, got)
			require.NoError(t, err, "the first part must arrive before the server sends the second")
			assert.Equal(t, first, string(got))
			close(readFirst)
			rest, err := io.ReadAll(br)
			require.NoError(t, err)
			assert.Equal(t, second, string(rest))
		})
	}
}
