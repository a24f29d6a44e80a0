// Package tokencache keeps the agent's current token in one private file in
// the data directory so that a restart costs no auth request. The file is
// bound to the configuration the token was issued for (server URLs, a hash
// of the tenant token, the device key's fingerprint); a token under any
// other binding, an expired token or a damaged file is discarded on load.
//
// The raw JWT lives only in that file: nothing here logs it or puts it in
// an error. The package implements agent.TokenStore; it imports the agent
// package (for Token and ParseToken), internal/atomicfile and the standard
// library, and must not import any transport.
package tokencache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mender-agent/mender-agent/agent"
	"github.com/mender-agent/mender-agent/internal/atomicfile"
)

// FileName is the name of the cache file in the data directory.
const FileName = "mender-agent-token.json"

// Log field names.
const (
	logPath    = "path"
	logExpires = "expires"
)

// maxFileSize bounds what Load reads: a token of the largest accepted size
// plus room for the binding.
const maxFileSize = agent.MaxTokenSize + 16<<10

// ErrDiscarded means the cache file was unusable (damaged, bound to another
// configuration, expired or not private) and has been deleted. The wrapping
// error says why.
var ErrDiscarded = errors.New("cached token discarded")

// Binding is the configuration a cached token belongs to. A token cached
// under one Binding is never loaded under another.
type Binding struct {
	// ServerURLs are the configured server URLs, in order.
	ServerURLs []string `json:"server_urls"`
	// TenantHash is the SHA-256 of the tenant token in lowercase hex (see
	// HashTenantToken); the tenant token itself is never stored.
	TenantHash string `json:"tenant_hash"`
	// KeyFingerprint identifies the device key (keystore.Fingerprint of
	// its public key); it is compared as an opaque string.
	KeyFingerprint string `json:"key_fingerprint"`
}

// NewBinding returns the Binding for the given servers, tenant token (empty
// when there is none) and device key fingerprint.
func NewBinding(serverURLs []string, tenantToken, keyFingerprint string) Binding {
	return Binding{
		ServerURLs:     slices.Clone(serverURLs),
		TenantHash:     HashTenantToken(tenantToken),
		KeyFingerprint: keyFingerprint,
	}
}

// HashTenantToken returns the SHA-256 of tenantToken in lowercase hex.
func HashTenantToken(tenantToken string) string {
	sum := sha256.Sum256([]byte(tenantToken))
	return hex.EncodeToString(sum[:])
}

// Options configure a Cache.
type Options struct {
	// Path is the cache file, normally FileName in the data directory.
	// Required.
	Path string
	// Binding is the configuration the cached token must belong to.
	// Required.
	Binding Binding
	// Logger receives debug lines about saves and clears; nil discards
	// them. Load reports problems as errors instead of logging them.
	Logger logrus.FieldLogger
	// Now is the wall clock used to reject expired tokens and stamp
	// saved_at; nil means time.Now.
	Now func() time.Time
}

// Cache is a file-backed agent.TokenStore. It is safe for concurrent use.
type Cache struct {
	path    string
	binding Binding
	log     logrus.FieldLogger
	now     func() time.Time

	mu sync.Mutex
}

var _ agent.TokenStore = (*Cache)(nil)

// New checks opts and returns a Cache. It does no I/O: a missing data
// directory shows up as an error from Save.
func New(opts Options) (*Cache, error) {
	b := opts.Binding
	if opts.Path == "" {
		return nil, errors.New("token cache: Path is empty; use FileName in the data directory")
	}
	if len(b.ServerURLs) == 0 {
		return nil, errors.New("token cache: binding has no server URL")
	}
	for i, u := range b.ServerURLs {
		if u == "" {
			return nil, fmt.Errorf("token cache: binding server URL %d is empty", i+1)
		}
	}
	if b.TenantHash == "" || b.KeyFingerprint == "" {
		return nil, errors.New("token cache: binding needs a tenant hash and a key fingerprint; build it with NewBinding")
	}
	c := &Cache{path: opts.Path, binding: b, log: opts.Logger, now: opts.Now}
	c.binding.ServerURLs = slices.Clone(b.ServerURLs)
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		l := logrus.New()
		l.Out = io.Discard
		c.log = l
	}
	return c, nil
}

// Path returns the cache file's path.
func (c *Cache) Path() string { return c.path }

// file is the on-disk form.
type file struct {
	JWT       string    `json:"jwt"`
	ServerURL string    `json:"server_url"`
	Binding   Binding   `json:"binding"`
	SavedAt   time.Time `json:"saved_at"`
}

// Load returns the cached token, or the zero Token and nil when there is
// no cache file. A file that is damaged, bound to another configuration,
// holds an expired token or is readable by others is deleted and reported
// with an error wrapping ErrDiscarded that says why. A path that is not a
// regular file is reported and left alone.
func (c *Cache) Load() (agent.Token, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := os.Open(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return agent.Token{}, nil
	}
	if err != nil {
		return agent.Token{}, fmt.Errorf("token cache %s: %w", c.path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return agent.Token{}, fmt.Errorf("token cache %s: %w", c.path, err)
	}
	if !fi.Mode().IsRegular() {
		return agent.Token{}, fmt.Errorf("token cache %s: not a regular file (%s); remove it", c.path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return agent.Token{}, c.discard(fmt.Sprintf("file mode %#o lets others read it, a token must stay private", perm))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return agent.Token{}, fmt.Errorf("token cache %s: %w", c.path, err)
	}
	tok, err := c.parse(data)
	if err != nil {
		return agent.Token{}, c.discard(err.Error())
	}
	return tok, nil
}

// parse checks the file content against the binding and the clock.
func (c *Cache) parse(data []byte) (agent.Token, error) {
	if len(data) > maxFileSize {
		return agent.Token{}, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	var f file
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&f); err != nil {
		return agent.Token{}, fmt.Errorf("not a token cache file: %v", err)
	}
	if dec.More() {
		return agent.Token{}, errors.New("not a token cache file: data after the JSON object")
	}
	switch {
	case !slices.Equal(f.Binding.ServerURLs, c.binding.ServerURLs):
		return agent.Token{}, fmt.Errorf("bound to servers %q, configured are %q", f.Binding.ServerURLs, c.binding.ServerURLs)
	case f.Binding.TenantHash != c.binding.TenantHash:
		return agent.Token{}, errors.New("bound to another tenant token")
	case f.Binding.KeyFingerprint != c.binding.KeyFingerprint:
		return agent.Token{}, errors.New("bound to another device key")
	case !c.configured(f.ServerURL):
		return agent.Token{}, fmt.Errorf("issued by %q, which is not a configured server", f.ServerURL)
	}
	tok, err := agent.ParseToken(f.JWT, f.ServerURL, f.SavedAt)
	if err != nil {
		return agent.Token{}, fmt.Errorf("holds no usable token: %v", err)
	}
	if now := c.now(); !tok.Valid(now) {
		return agent.Token{}, fmt.Errorf("token expired at %s", tok.Expires.UTC().Format(time.RFC3339))
	}
	return tok, nil
}

// configured reports whether serverURL is one of the bound servers,
// ignoring a trailing slash.
func (c *Cache) configured(serverURL string) bool {
	if serverURL == "" {
		return false
	}
	want := strings.TrimRight(serverURL, "/")
	for _, u := range c.binding.ServerURLs {
		if strings.TrimRight(u, "/") == want {
			return true
		}
	}
	return false
}

func (c *Cache) discard(reason string) error {
	err := fmt.Errorf("token cache %s: %s: %w", c.path, reason, ErrDiscarded)
	if rmErr := os.Remove(c.path); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
		return errors.Join(err, fmt.Errorf("token cache %s: delete: %w", c.path, rmErr))
	}
	return err
}

// Save writes tok to the cache file (mode 0600, crash-safe). Saving the
// zero Token clears the cache. A token issued by a server outside the
// binding is refused, since Load would discard it.
func (c *Cache) Save(tok agent.Token) error {
	if tok.IsZero() {
		return c.Clear()
	}
	if !c.configured(tok.ServerURL) {
		return fmt.Errorf("token cache %s: token issued by %q, which is not a configured server; not saved", c.path, tok.ServerURL)
	}
	data, err := json.MarshalIndent(file{
		JWT:       tok.JWT(),
		ServerURL: tok.ServerURL,
		Binding:   c.binding,
		SavedAt:   c.now().UTC(),
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("token cache %s: encode: %w", c.path, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := atomicfile.WriteFile(c.path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	c.log.WithFields(logrus.Fields{logPath: c.path, logExpires: tok.Expires}).Debug("token cache saved")
	return nil
}

// Clear deletes the cache file; a missing file is not an error.
func (c *Cache) Clear() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := os.Remove(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("token cache %s: delete: %w", c.path, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(c.path)); err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	c.log.WithField(logPath, c.path).Debug("token cache cleared")
	return nil
}
