package forwarder

import (
	"log"
	"strings"

	"github.com/sirupsen/logrus"
)

// newStdLogger routes the net/http server's and the reverse proxy's own
// messages (bad requests, hijack errors) to l at debug level.
func newStdLogger(l logrus.FieldLogger) *log.Logger {
	return log.New(debugWriter{l}, "", 0)
}

type debugWriter struct{ l logrus.FieldLogger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.l.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}
