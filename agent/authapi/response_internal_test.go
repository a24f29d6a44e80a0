package authapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mender-agent/mender-agent/agent"
)

var fuzzNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func TestParseRetryAfter(t *testing.T) {
	tests := []struct {
		name   string
		value  string
		want   time.Duration
		wantOK bool
	}{
		{name: "seconds", value: "120", want: 2 * time.Minute, wantOK: true},
		{name: "zero", value: "0", want: 0, wantOK: true},
		{name: "spaces trimmed", value: " 5 ", want: 5 * time.Second, wantOK: true},
		{name: "huge clamped", value: "99999999999999999999999", want: MaxRetryAfter, wantOK: true},
		{name: "a week clamped", value: "604800", want: MaxRetryAfter, wantOK: true},
		{name: "IMF date", value: "Wed, 04 Mar 2026 05:07:07 GMT", want: time.Minute, wantOK: true},
		{name: "RFC 850 date", value: "Wednesday, 04-Mar-26 05:08:07 GMT", want: 2 * time.Minute, wantOK: true},
		{name: "asctime date", value: "Wed Mar  4 05:06:17 2026", want: 10 * time.Second, wantOK: true},
		{name: "date in the past", value: "Wed, 04 Mar 2026 04:00:00 GMT", want: 0, wantOK: true},
		{name: "far date clamped", value: "Wed, 04 Mar 2027 05:06:07 GMT", want: MaxRetryAfter, wantOK: true},
		{name: "empty", value: ""},
		{name: "negative", value: "-5"},
		{name: "fraction", value: "1.5"},
		{name: "words", value: "tomorrow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseRetryAfter(tt.value, fuzzNow)
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestCleanServerText(t *testing.T) {
	assert.Equal(t, "line oneforged=1", clean("line one\nforged=1", 100))
	assert.Equal(t, "abc...", clean("abcdef", 3))
	assert.Equal(t, "ok", clean("o\xffk", 10))
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "Wed, 04 Mar 2026 05:07:07 GMT", "Wed Mar  4 05:06:17 2026", "-1", "", "1e9", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := parseRetryAfter(v, fuzzNow)
		if !ok {
			assert.Zero(t, d)
			return
		}
		assert.GreaterOrEqual(t, d, time.Duration(0))
		assert.LessOrEqual(t, d, MaxRetryAfter)
	})
}

func FuzzReadResponse(f *testing.F) {
	enc := "eyJhbGciOiJFZERTQSJ9.eyJleHAiOjE4MDAwMDAwMDAsInN1YiI6ImQifQ.c2ln"
	f.Add(200, enc, "", "")
	f.Add(401, `{"error":"dev auth: unauthorized","request_id":"r1"}`, "", "r1")
	f.Add(400, `{"error":"bad\nline"}`, "", "")
	f.Add(429, ``, "30", "")
	f.Add(503, `<html>`, "Wed, 04 Mar 2026 05:07:07 GMT", "x")
	f.Add(500, `{"error":5}`, "", "")
	f.Add(200, "a.b", "", "")
	f.Fuzz(func(t *testing.T, status int, body, retryAfter, rid string) {
		if status < 100 || status > 999 {
			return
		}
		resp := &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}
		resp.Header.Set("Retry-After", retryAfter)
		resp.Header.Set(RequestIDHeader, rid)
		tok, gotRID, err := readResponse(resp, "https://s", fuzzNow)
		assert.NotContains(t, gotRID, "\n")
		if err == nil {
			require.Equal(t, http.StatusOK, status)
			assert.Equal(t, "https://s", tok.ServerURL)
			assert.False(t, tok.IsZero())
			return
		}
		assert.True(t, tok.IsZero())
		assert.NotContains(t, err.Error(), "\n", "server text cannot forge log lines")
		switch status {
		case http.StatusUnauthorized:
			assert.ErrorIs(t, err, agent.ErrUnauthorized)
		case http.StatusBadRequest:
			assert.ErrorIs(t, err, agent.ErrBadRequest)
		case http.StatusOK:
			assert.ErrorIs(t, err, agent.ErrMalformedToken)
		default:
			var se *StatusError
			assert.True(t, errors.As(err, &se), "%v", err)
		}
	})
}

func TestReadResponseBoundsTheBody(t *testing.T) {
	// An endless 200 body: the read stops after MaxTokenSize+1 bytes.
	r := &countingReader{}
	resp := &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(r)}
	_, _, err := readResponse(resp, "https://s", fuzzNow)
	require.ErrorIs(t, err, agent.ErrMalformedToken)
	assert.Equal(t, agent.MaxTokenSize+1, r.n)
}

type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	n := copy(p, bytes.Repeat([]byte("a"), len(p)))
	r.n += n
	return n, nil
}
