package authserver

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// MaxAuthBody bounds the auth request body the server reads.
const MaxAuthBody = 1 << 20

// SignatureHeader carries the base64 signature over the auth request body.
const SignatureHeader = "X-MEN-Signature"

// AuthRequest is a verified auth request.
type AuthRequest struct {
	// Identity is the canonical id_data: the object re-serialized with
	// sorted keys.
	Identity    string
	PubKeyPEM   string
	PubKey      crypto.PublicKey
	TenantToken string
	Tier        string
}

// RequestError is a refused auth request: the status the real server
// answers and its error message.
type RequestError struct {
	Status  int
	Message string
}

func (e *RequestError) Error() string { return strconv.Itoa(e.Status) + ": " + e.Message }

func badRequest(format string, args ...any) *RequestError {
	return &RequestError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// VerifyAuthRequest checks an auth request body and its X-MEN-Signature
// value the way the real server does, in the same order (mender-protocol.md
// §1.5): bad JSON, a missing or non-string id_data, a missing pubkey, a
// public key that is not SPKI PEM ("PUBLIC KEY") of a supported type,
// id_data that is not a JSON object, or a missing signature give a 400
// *RequestError; a signature that does not verify over the exact body
// bytes gives a 401 one.
func VerifyAuthRequest(body []byte, signature string) (*AuthRequest, error) {
	var req struct {
		IDData      string `json:"id_data"`
		PubKey      string `json:"pubkey"`
		TenantToken string `json:"tenant_token"`
		Tier        string `json:"tier"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, badRequest("failed to decode auth request: %v", err)
	}
	if req.IDData == "" {
		return nil, badRequest("id_data: cannot be blank")
	}
	if req.PubKey == "" {
		return nil, badRequest("pubkey: cannot be blank")
	}
	pub, err := parsePublicKey(req.PubKey)
	if err != nil {
		return nil, badRequest("cannot decode public key: %v", err)
	}
	identity, err := canonicalIdentity(req.IDData)
	if err != nil {
		return nil, badRequest("id_data: %v", err)
	}
	if signature == "" {
		return nil, badRequest("missing request signature header")
	}
	if err := verifySignature(pub, body, signature); err != nil {
		return nil, &RequestError{Status: http.StatusUnauthorized, Message: "signature verification failed: " + err.Error()}
	}
	return &AuthRequest{Identity: identity, PubKeyPEM: req.PubKey, PubKey: pub, TenantToken: req.TenantToken, Tier: req.Tier}, nil
}

func parsePublicKey(p string) (crypto.PublicKey, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("PEM type %q, want \"PUBLIC KEY\"", block.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return pub, nil
	}
	return nil, fmt.Errorf("public key algorithm %T not supported", pub)
}

// canonicalIdentity parses id_data as a JSON object and re-serializes it
// with sorted keys.
func canonicalIdentity(idData string) (string, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(idData)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return "", fmt.Errorf("not a JSON object: %v", err)
	}
	if m == nil {
		return "", errors.New("not a JSON object: null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return "", errors.New("not a JSON object: data after the object")
	}
	out, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

func verifySignature(pub crypto.PublicKey, body []byte, signature string) error {
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return fmt.Errorf("signature is not base64: %v", err)
	}
	digest := sha256.Sum256(body)
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest[:], sig) {
			return errors.New("ECDSA verification error")
		}
		return nil
	case ed25519.PublicKey:
		if !ed25519.Verify(k, body, sig) {
			return errors.New("ed25519 verification error")
		}
		return nil
	}
	return fmt.Errorf("public key algorithm %T not supported", pub)
}

// handleAuth serves PathAuth.
func (s *Server) handleAuth(w http.ResponseWriter, r *http.Request) {
	e := entryFrom(r.Context())
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAuthBody))
	e.Body = body
	e.Signature = r.Header.Get(SignatureHeader)
	if f := s.takeFault(); f != nil {
		sleepCtx(r.Context(), f.Delay)
		if s.applyFault(w, r, f) {
			return
		}
	}
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "failed to read auth request: "+err.Error())
		return
	}
	req, err := VerifyAuthRequest(body, e.Signature)
	if err != nil {
		var re *RequestError
		errors.As(err, &re)
		writeError(w, r, re.Status, re.Message)
		return
	}

	if s.tenant != "" && req.TenantToken != s.tenant {
		writeError(w, r, http.StatusUnauthorized, "dev auth: unauthorized")
		return
	}
	s.mu.Lock()
	a, created := s.lookupLocked(req.Identity, req.PubKeyPEM)
	a.requests++
	a.lastAuth = s.now()
	a.tenantToken = req.TenantToken
	a.tier = req.Tier
	e.DeviceID = a.deviceID
	status, lifetime := a.status, s.st.lifetime
	var jwt string
	var exp int64
	if status == StatusAccepted {
		a.tokens++
		jwt, exp = s.issueToken(a, lifetime)
	}
	s.mu.Unlock()

	log := s.log.WithField(FieldDeviceID, a.deviceID).WithField(FieldIdentity, a.identity)
	if created {
		log.WithField(FieldStatus, status).Info("new device")
	}
	if status != StatusAccepted {
		writeError(w, r, http.StatusUnauthorized, "dev auth: unauthorized")
		return
	}
	log.WithField(FieldExpires, exp).Info("device authenticated; token issued")
	w.Header().Set("Content-Type", "application/jwt")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, jwt)
}

// applyFault answers according to f and reports whether it did.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f *Fault) bool {
	if f.Drop {
		drop(w)
		return true
	}
	if f.Status == 0 {
		return false
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Body != nil {
		ct := f.ContentType
		if ct == "" {
			ct = "application/json"
			if f.Status == http.StatusOK {
				ct = "application/jwt"
			}
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(f.Status)
		_, _ = w.Write(f.Body)
		return true
	}
	writeError(w, r, f.Status, "injected fault: "+http.StatusText(f.Status))
	return true
}

// writeError answers with the real server's error shape.
func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	e := entryFrom(r.Context())
	e.Error = msg
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error     string `json:"error"`
		RequestID string `json:"request_id"`
	}{msg, e.RequestID})
}
