package authserver

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"time"
)

// Request is one entry of the request log.
type Request struct {
	Time       time.Time
	Method     string
	Path       string
	RemoteAddr string
	// Status is the status answered; 0 when the connection was dropped.
	Status    int
	RequestID string
	// DeviceID is set when the request authenticated a device (auth
	// requests) or carried a valid token (device APIs).
	DeviceID string
	// Header is a copy of the request headers.
	Header http.Header
	// Body and Signature are the exact body and X-MEN-Signature of auth
	// requests; nil and empty for other paths.
	Body      []byte
	Signature string
	// Error is the error message sent back, if any.
	Error string
}

type entryKey struct{}

// entryFrom returns the log entry of the request being served.
func entryFrom(ctx context.Context) *Request {
	if e, ok := ctx.Value(entryKey{}).(*Request); ok {
		return e
	}
	return &Request{}
}

// RequestLog returns a copy of the request log, in the order answers
// started. An entry is added before its answer leaves the server.
func (s *Server) RequestLog() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.st.reqLog...)
}

// ClearRequestLog empties the request log.
func (s *Server) ClearRequestLog() {
	s.mu.Lock()
	s.st.reqLog = nil
	s.mu.Unlock()
}

func (s *Server) record(e *Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.st.reqLog) >= s.maxLog {
		// Drop the oldest tenth at once so a full log costs one copy per
		// maxLog/10 requests, not one per request.
		drop := s.maxLog/10 + 1
		s.st.reqLog = append(s.st.reqLog[:0], s.st.reqLog[min(drop, len(s.st.reqLog)):]...)
	}
	s.st.reqLog = append(s.st.reqLog, *e)
}

// logged gives every request an id, records it in the request log and logs
// it at debug level.
func (s *Server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			drop(w)
			return
		}
		s.handleWG.Add(1) // under mu, so never after Close began to wait
		s.mu.Unlock()
		defer s.handleWG.Done()
		e := &Request{
			Time:       s.now(),
			Method:     r.Method,
			Path:       r.URL.Path,
			RemoteAddr: r.RemoteAddr,
			RequestID:  newID(),
			Header:     r.Header.Clone(),
		}
		w.Header().Set(RequestIDHeader, e.RequestID)
		rec := &statusRecorder{ResponseWriter: w, s: s, e: e}
		defer func() {
			// A dropped HTTP/2 stream aborts the handler by panicking.
			if v := recover(); v != nil {
				rec.record()
				panic(v)
			}
		}()
		if s.isDown() {
			drop(rec)
			return
		}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), entryKey{}, e)))
		switch {
		case rec.status != 0:
			e.Status = rec.status
		case !rec.dropped:
			e.Status = http.StatusOK
		}
		rec.record()
		s.log.WithField(FieldPath, e.Path).WithField(FieldStatus, e.Status).WithField(FieldRequestID, e.RequestID).
			Debugf("%s %s", e.Method, e.Path)
	})
}

// statusRecorder remembers the status written and passes Hijack and Flush
// through.
type statusRecorder struct {
	http.ResponseWriter
	s        *Server
	e        *Request
	status   int
	dropped  bool
	recorded bool
}

// record adds the entry to the log once.
func (r *statusRecorder) record() {
	if !r.recorded {
		r.recorded = true
		r.s.record(r.e)
	}
}

// WriteHeader logs the request before the answer can reach the client,
// so a test that has its answer always finds it in the log.
func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
		r.e.Status = code
		r.record()
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(p)
}

// recordStatus logs the request with status now, for answers written
// on a hijacked connection.
func recordStatus(w http.ResponseWriter, status int) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.status = status
		rec.e.Status = status
		rec.record()
	}
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked (HTTP/2?)")
	}
	r.dropped = true
	return h.Hijack()
}

// drop cuts the connection without an answer: hijack and close on
// HTTP/1, abort the stream on HTTP/2.
func drop(w http.ResponseWriter) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.record() // before the client can see the cut
	}
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			_ = c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// newID returns a random UUID (version 4) string.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
