package authserver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
)

// Attribute is one inventory attribute.
type Attribute struct {
	Name  string `json:"name"`
	Value any    `json:"value"`
}

// EchoReply is what PathEcho answers: the request as the server saw it.
type EchoReply struct {
	Method   string      `json:"method"`
	Path     string      `json:"path"`
	Query    string      `json:"query"`
	Host     string      `json:"host"`
	Header   http.Header `json:"header"` // without Authorization
	Bytes    int64       `json:"bytes"`
	SHA256   string      `json:"sha256"`
	DeviceID string      `json:"device_id"`
}

// UploadReply is what PathUpload answers.
type UploadReply struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathAuth, s.handleAuth)
	mux.HandleFunc("GET "+PathInventory, s.device(s.getInventory))
	mux.HandleFunc("PUT "+PathInventory, s.device(s.putInventory))
	mux.HandleFunc("PATCH "+PathInventory, s.device(s.putInventory))
	mux.HandleFunc("GET "+PathDeploymentsNext, s.device(noDeployment))
	mux.HandleFunc("POST "+PathDeploymentsNext, s.device(noDeployment))
	mux.HandleFunc("GET "+PathDeviceConnect, s.device(s.handleWebSocket))
	mux.HandleFunc("POST "+PathUpload, s.device(upload))
	mux.HandleFunc("PUT "+PathUpload, s.device(upload))
	mux.HandleFunc(PathEcho, s.device(echo))
	mux.HandleFunc("GET "+PathManagementDevice, s.listDevices)
	mux.HandleFunc("PUT "+PathManagementDevice+"/{id}/status", s.putStatus)
	return s.logged(mux)
}

// device wraps a device API handler with the bearer token check.
func (s *Server) device(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := s.authorize(r.Header.Get("Authorization"))
		if err != nil {
			writeError(w, r, http.StatusUnauthorized, "unauthorized: "+err.Error())
			return
		}
		entryFrom(r.Context()).DeviceID = id
		h(w, r, id)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Inventory returns the inventory attributes stored for a device.
func (s *Server) Inventory(deviceID string) []Attribute {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Attribute(nil), s.st.attrs[deviceID]...)
}

func (s *Server) getInventory(w http.ResponseWriter, _ *http.Request, id string) {
	attrs := s.Inventory(id)
	if attrs == nil {
		attrs = []Attribute{}
	}
	writeJSON(w, http.StatusOK, attrs)
}

// putInventory stores attributes: PUT replaces the set, PATCH updates it
// attribute by attribute.
func (s *Server) putInventory(w http.ResponseWriter, r *http.Request, id string) {
	var attrs []Attribute
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&attrs); err != nil {
		writeError(w, r, http.StatusBadRequest, "failed to decode attributes: "+err.Error())
		return
	}
	for _, a := range attrs {
		if a.Name == "" {
			writeError(w, r, http.StatusBadRequest, "attribute without a name")
			return
		}
	}
	s.mu.Lock()
	if r.Method == http.MethodPut {
		s.st.attrs[id] = attrs
	} else {
		cur := s.st.attrs[id]
	next:
		for _, a := range attrs {
			for i := range cur {
				if cur[i].Name == a.Name {
					cur[i] = a
					continue next
				}
			}
			cur = append(cur, a)
		}
		s.st.attrs[id] = cur
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func noDeployment(w http.ResponseWriter, _ *http.Request, _ string) {
	w.WriteHeader(http.StatusNoContent)
}

// upload reads the whole body as a stream and answers its size and
// SHA-256.
func upload(w http.ResponseWriter, r *http.Request, _ string) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "read upload: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, UploadReply{Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))})
}

func echo(w http.ResponseWriter, r *http.Request, id string) {
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	hdr := r.Header.Clone()
	hdr.Del("Authorization")
	writeJSON(w, http.StatusOK, EchoReply{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host, Header: hdr,
		Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil)), DeviceID: id,
	})
}

// deviceJSON is a device in the management API listing.
type deviceJSON struct {
	ID        string `json:"id"`
	AuthSetID string `json:"auth_set_id"`
	Status    Status `json:"status"`
	Identity  string `json:"identity_data"`
	PubKey    string `json:"pubkey"`
	AuthCount int    `json:"auth_requests"`
}

// listDevices serves a minimal management listing (no authentication: it
// is a test server on loopback).
func (s *Server) listDevices(w http.ResponseWriter, _ *http.Request) {
	out := []deviceJSON{}
	for _, d := range s.Devices() {
		out = append(out, deviceJSON{ID: d.ID, AuthSetID: d.AuthSetID, Status: d.Status, Identity: d.Identity, PubKey: d.PubKey, AuthCount: d.AuthCount})
	}
	writeJSON(w, http.StatusOK, out)
}

// putStatus sets a device's status from {"status":"accepted"|"rejected"|"pending"}.
func (s *Server) putStatus(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Status Status `json:"status"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
		writeError(w, r, http.StatusBadRequest, "failed to decode status: "+err.Error())
		return
	}
	switch body.Status {
	case StatusAccepted, StatusRejected, StatusPending:
	default:
		writeError(w, r, http.StatusBadRequest, "status must be accepted, rejected or pending")
		return
	}
	if err := s.setStatus(r.PathValue("id"), body.Status); err != nil {
		writeError(w, r, http.StatusNotFound, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
