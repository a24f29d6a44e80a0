package authserver

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// wsGUID is the fixed GUID of the RFC 6455 handshake.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// MaxWebSocketFrame bounds the payload of one WebSocket frame.
const MaxWebSocketFrame = 16 << 20

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// WebSocketAccept returns the Sec-WebSocket-Accept value for a
// Sec-WebSocket-Key.
func WebSocketAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// handleWebSocket upgrades the connection (RFC 6455 §4.2) and echoes
// every data frame back as is, answers pings with pongs and returns a
// close frame with the client's status.
func (s *Server) handleWebSocket(w http.ResponseWriter, r *http.Request, _ string) {
	if !headerHasToken(r.Header, "Connection", "upgrade") || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		writeError(w, r, http.StatusBadRequest, "websocket: not an upgrade request")
		return
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		writeError(w, r, http.StatusUpgradeRequired, "websocket: unsupported version")
		return
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
		writeError(w, r, http.StatusBadRequest, "websocket: bad Sec-WebSocket-Key")
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		writeError(w, r, http.StatusInternalServerError, "websocket: connection cannot be upgraded (HTTP/2)")
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	forget, ok := s.trackHijacked(conn)
	if !ok {
		return
	}
	defer forget()
	recordStatus(w, http.StatusSwitchingProtocols)

	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + WebSocketAccept(key) + "\r\n"
	if p := r.Header.Get("Sec-WebSocket-Protocol"); p != "" {
		resp += "Sec-WebSocket-Protocol: " + strings.TrimSpace(strings.Split(p, ",")[0]) + "\r\n"
	}
	resp += RequestIDHeader + ": " + entryFrom(r.Context()).RequestID + "\r\n\r\n"
	if _, err := io.WriteString(conn, resp); err != nil {
		return
	}
	_ = echoFrames(brw.Reader, conn)
}

// echoFrames runs the echo loop until the client closes, an error occurs
// or the connection is cut.
func echoFrames(r *bufio.Reader, w net.Conn) error {
	for {
		f, err := ReadFrame(r, true)
		if err != nil {
			if errors.Is(err, errProtocol) {
				_ = WriteFrame(w, Frame{Fin: true, Opcode: opClose, Payload: []byte{0x03, 0xea}}, nil) // 1002
			}
			return err
		}
		switch f.Opcode {
		case opPing:
			f.Opcode = opPong
		case opPong:
			continue
		}
		if err := WriteFrame(w, f, nil); err != nil {
			return err
		}
		if f.Opcode == opClose {
			return nil
		}
	}
}

var errProtocol = errors.New("websocket protocol error")

// Frame is one WebSocket frame.
type Frame struct {
	Fin     bool
	Opcode  byte
	Payload []byte
}

// ReadFrame reads one frame. mustMask requires the masking a client must
// apply (servers read with true, clients with false). Payloads larger than
// MaxWebSocketFrame, reserved bits, unknown opcodes and malformed control
// frames are protocol errors.
func ReadFrame(r io.Reader, mustMask bool) (Frame, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Frame{}, err
	}
	f := Frame{Fin: hdr[0]&0x80 != 0, Opcode: hdr[0] & 0x0f}
	if hdr[0]&0x70 != 0 {
		return Frame{}, fmt.Errorf("%w: reserved bits set", errProtocol)
	}
	switch f.Opcode {
	case opContinuation, opText, opBinary, opClose, opPing, opPong:
	default:
		return Frame{}, fmt.Errorf("%w: unknown opcode %#x", errProtocol, f.Opcode)
	}
	masked := hdr[1]&0x80 != 0
	if masked != mustMask {
		return Frame{}, fmt.Errorf("%w: mask bit %v, want %v", errProtocol, masked, mustMask)
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return Frame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return Frame{}, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if f.Opcode >= opClose && (n > 125 || !f.Fin) {
		return Frame{}, fmt.Errorf("%w: control frame too long or fragmented", errProtocol)
	}
	if n > MaxWebSocketFrame {
		return Frame{}, fmt.Errorf("%w: frame of %d bytes, limit %d", errProtocol, n, MaxWebSocketFrame)
	}
	var mask [4]byte
	if masked {
		if _, err := io.ReadFull(r, mask[:]); err != nil {
			return Frame{}, err
		}
	}
	f.Payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.Payload); err != nil {
		return Frame{}, err
	}
	if masked {
		for i := range f.Payload {
			f.Payload[i] ^= mask[i%4]
		}
	}
	return f, nil
}

// WriteFrame writes f, masked with mask when mask is not nil (clients must
// mask, servers must not).
func WriteFrame(w io.Writer, f Frame, mask []byte) error {
	b0 := f.Opcode
	if f.Fin {
		b0 |= 0x80
	}
	buf := []byte{b0, 0}
	if mask != nil {
		buf[1] = 0x80
	}
	switch n := len(f.Payload); {
	case n < 126:
		buf[1] |= byte(n)
	case n <= 0xffff:
		buf[1] |= 126
		buf = binary.BigEndian.AppendUint16(buf, uint16(n))
	default:
		buf[1] |= 127
		buf = binary.BigEndian.AppendUint64(buf, uint64(n))
	}
	payload := f.Payload
	if mask != nil {
		buf = append(buf, mask[:4]...)
		payload = make([]byte, len(f.Payload))
		for i := range payload {
			payload[i] = f.Payload[i] ^ mask[i%4]
		}
	}
	_, err := w.Write(append(buf, payload...))
	return err
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
