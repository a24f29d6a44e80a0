package authapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mender-agent/mender-agent/agent"
)

// MaxRetryAfter bounds the Retry-After value this package reports, so that
// absurd values (seconds or dates years away) stay representable. How long
// the device actually waits is the agent's policy, which caps it lower
// (see agent.RetryAfterError).
const MaxRetryAfter = 24 * time.Hour

// maxErrorMessage bounds how much of a server's error message is quoted.
const maxErrorMessage = 200

// StatusError is an unexpected HTTP status from the auth endpoint (one
// that is not 200, 400 or 401, and not 429/503 with a usable Retry-After).
type StatusError struct {
	Code      int
	RequestID string
	// Message is the server's "error" field, shortened and cleaned; it may
	// be empty.
	Message string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("auth request: status %d", e.Code)
	if text := http.StatusText(e.Code); text != "" {
		msg += " " + text
	}
	if e.Message != "" {
		msg += fmt.Sprintf(": server says %q", e.Message)
	}
	return msg + " (request_id " + orNone(e.RequestID) + ")"
}

// readResponse interprets the auth endpoint's answer. It reads at most
// agent.MaxTokenSize+1 bytes of the body. It returns the server's request
// id for logging.
func readResponse(resp *http.Response, server string, now time.Time) (agent.Token, string, error) {
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, agent.MaxTokenSize+1))
	rid := clean(resp.Header.Get(RequestIDHeader), 64)
	if resp.StatusCode != http.StatusOK {
		msg, bodyRID := parseErrorBody(body)
		if rid == "" {
			rid = bodyRID
		}
		return agent.Token{}, rid, statusError(resp, msg, rid, now)
	}
	if readErr != nil {
		return agent.Token{}, rid, fmt.Errorf("read token (request_id %s): %w", orNone(rid), readErr)
	}
	if len(body) > agent.MaxTokenSize {
		return agent.Token{}, rid, fmt.Errorf("token response is larger than %d bytes (request_id %s): %w", agent.MaxTokenSize, orNone(rid), agent.ErrMalformedToken)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return agent.Token{}, rid, fmt.Errorf("empty token response (request_id %s): %w", orNone(rid), agent.ErrMalformedToken)
	}
	text := string(body)
	if trimmed := bytes.TrimSpace(body); trimmed[0] == '"' {
		// The API description calls the answer a JSON string; the server
		// sends the raw token, but a gateway that follows the description
		// must not make the quotes part of the token.
		if err := json.Unmarshal(trimmed, &text); err != nil {
			return agent.Token{}, rid, fmt.Errorf("token response is a malformed JSON string (request_id %s): %w", orNone(rid), agent.ErrMalformedToken)
		}
	}
	tok, err := agent.ParseToken(text, server, now)
	if err != nil {
		return agent.Token{}, rid, fmt.Errorf("token response (request_id %s): %w", orNone(rid), err)
	}
	return tok, rid, nil
}

func statusError(resp *http.Response, msg, rid string, now time.Time) error {
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return fmt.Errorf("%w: server says %q (request_id %s); accept the device on the server", agent.ErrUnauthorized, orDefault(msg, "unauthorized"), orNone(rid))
	case http.StatusBadRequest:
		return fmt.Errorf("%w: server says %q (request_id %s)", agent.ErrBadRequest, msg, orNone(rid))
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		se := &StatusError{Code: resp.StatusCode, RequestID: rid, Message: msg}
		if after, ok := parseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
			return &agent.RetryAfterError{After: after, Err: se}
		}
		return se
	default:
		return &StatusError{Code: resp.StatusCode, RequestID: rid, Message: msg}
	}
}

// parseErrorBody extracts "error" and "request_id" from a JSON error body;
// anything else yields empty strings. The message is cleaned of control
// characters and shortened.
func parseErrorBody(body []byte) (msg, rid string) {
	var e struct {
		Error     string `json:"error"`
		RequestID string `json:"request_id"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	return clean(e.Error, maxErrorMessage), clean(e.RequestID, 64)
}

// parseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3): either
// delay-seconds (digits only) or an HTTP-date, which is measured from now.
// The result is clamped to [0, MaxRetryAfter]. ok is false when the value
// is absent or malformed.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if strings.TrimLeft(v, "0123456789") == "" {
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil || secs > uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true // all digits: only overflow can fail
		}
		return time.Duration(secs) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := at.Sub(now)
	switch {
	case d < 0:
		return 0, true
	case d > MaxRetryAfter:
		return MaxRetryAfter, true
	}
	return d, true
}

// clean drops control characters and invalid UTF-8 from s and cuts it to
// at most n runes, so that a server's text cannot forge log lines.
func clean(s string, n int) string {
	var b strings.Builder
	count := 0
	for _, r := range s {
		if r == unicode.ReplacementChar || unicode.IsControl(r) {
			continue
		}
		if count == n {
			b.WriteString("...")
			break
		}
		b.WriteRune(r)
		count++
	}
	return b.String()
}

func orNone(s string) string { return orDefault(s, "none") }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
