package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"
)

// maxFileSize bounds a configuration file; real ones are a few hundred bytes.
const maxFileSize = 1 << 20

// LoadOptions says which files Load reads.
type LoadOptions struct {
	// MainPath is the main file (-c/--config); empty means
	// DefaultMainPath.
	MainPath string
	// FallbackPath is the fallback file (-b/--fallback-config); empty means
	// DefaultFallbackPath.
	FallbackPath string
	// MainExplicit and FallbackExplicit say the path was given on the
	// command line: such a file must exist. A missing file at a default
	// path only means its keys keep their defaults.
	MainExplicit     bool
	FallbackExplicit bool
	// Logger receives unknown-key warnings and debug notes; nil discards.
	Logger logrus.FieldLogger
}

// Load reads the fallback file, then the main file, over the defaults: keys
// in a later file override per key, nested objects merge field by field and
// arrays are replaced. Keys match case-insensitively. The result is
// normalized (URLs, duplicates) and validated, and errors name the file and
// the field. Load does file I/O only; it is safe to call concurrently.
func Load(opts LoadOptions) (*Config, error) {
	log := loggerOrDiscard(opts.Logger)
	files := []struct {
		path     string
		explicit bool
	}{
		{orDefault(opts.FallbackPath, DefaultFallbackPath), opts.FallbackExplicit},
		{orDefault(opts.MainPath, DefaultMainPath), opts.MainExplicit},
	}
	c := Default()
	c.sources = map[string]string{}
	found := 0
	for _, f := range files {
		data, err := readFile(f.path)
		if errors.Is(err, fs.ErrNotExist) && !f.explicit {
			log.WithField(fieldFile, f.path).Debugf("no configuration file at %s; its keys keep their defaults", f.path)
			continue
		}
		if err != nil {
			return nil, err
		}
		found++
		if err := apply(c, f.path, data, log); err != nil {
			return nil, err
		}
		log.WithField(fieldFile, f.path).Debugf("loaded configuration file %s", f.path)
	}
	if found == 0 {
		log.Debug("no configuration file found; using defaults")
	}
	if err := c.finish(log); err != nil {
		return nil, err
	}
	return c, nil
}

// Parse reads one file's content over the defaults, normalizes and
// validates it; name is used in messages. It is meant for tests and for
// build-time checks of a configuration; the daemon uses Load. It does no
// I/O and is safe to call concurrently.
func Parse(name string, data []byte, log logrus.FieldLogger) (*Config, error) {
	log = loggerOrDiscard(log)
	c := Default()
	c.sources = map[string]string{}
	if err := apply(c, name, data, log); err != nil {
		return nil, err
	}
	if err := c.finish(log); err != nil {
		return nil, err
	}
	return c, nil
}

func loggerOrDiscard(log logrus.FieldLogger) logrus.FieldLogger {
	if log != nil {
		return log
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("config %s: file does not exist; it was given explicitly, so create it or drop the option: %w", path, err)
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: read: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("config %s: larger than %d bytes; this is not a mender.conf", path, maxFileSize)
	}
	return data, nil
}

// apply parses one file and applies it onto c.
func apply(c *Config, name string, data []byte, log logrus.FieldLogger) error {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(data)) == 0 {
		log.WithField(fieldFile, name).Warnf("configuration file %s is empty; ignored", name)
		return nil
	}
	root, err := parseTree(name, data)
	if err != nil {
		return err
	}
	if root.kind != kindObject {
		line, col := lineCol(data, root.off)
		return &FieldError{File: name, Line: line, Column: col, Field: "(top level)",
			Msg: fmt.Sprintf("expected an object, got %s", root.kind)}
	}
	d := &decoder{file: name, data: data, log: log, sources: c.sources}
	return d.object(root, reflect.ValueOf(c).Elem(), "")
}

// finish normalizes the merged configuration, then validates it.
func (c *Config) finish(log logrus.FieldLogger) error {
	if c.ServerURL != "" {
		u, err := normalizeURL(c.ServerURL)
		if err != nil {
			return c.fieldErr("ServerURL", err.Error())
		}
		c.ServerURL = u
	}
	servers := make([]Server, 0, len(c.Servers))
	for i, s := range c.Servers {
		u, err := normalizeURL(s.ServerURL)
		if err != nil {
			return c.fieldErrFrom("Servers", fmt.Sprintf("Servers[%d].ServerURL", i), err.Error())
		}
		if slices.ContainsFunc(servers, func(o Server) bool { return o.ServerURL == u }) {
			log.WithField(fieldKey, "Servers").Debugf("dropping duplicate server %s from Servers", u)
			continue
		}
		servers = append(servers, Server{ServerURL: u})
	}
	if c.Servers != nil {
		c.Servers = servers
	}
	if c.ArtifactVerifyKeys != nil {
		keys := make([]string, 0, len(c.ArtifactVerifyKeys))
		for _, k := range c.ArtifactVerifyKeys {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
		c.ArtifactVerifyKeys = keys
	}
	if c.DeviceTier == "" {
		c.DeviceTier = TierStandard
	}
	c.Security.AuthKeyType = strings.ToLower(c.Security.AuthKeyType)
	c.Security.AuthKeyBackend = strings.ToLower(c.Security.AuthKeyBackend)
	if c.Security.AuthKeyBackend == "" {
		c.Security.AuthKeyBackend = BackendFile
	}
	if c.Security.TPMDevice == "" {
		c.Security.TPMDevice = DefaultTPMDevice
	}
	return c.Validate()
}

// normalizeURL trims trailing slashes, assumes https:// when no scheme is
// given, and rejects anything that is not an http(s) URL of a host.
func normalizeURL(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", errors.New("empty URL; set the server's address, e.g. https://mender.example.com")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	s = strings.TrimRight(s, "/")
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a valid URL: %w", redactRaw(raw), errors.Unwrap(err))
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return "", fmt.Errorf("%q: scheme %q is not supported; use https://", redactRaw(raw), u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("%q has no host", redactRaw(raw))
	case u.User != nil:
		return "", fmt.Errorf("%q contains credentials; remove the user:password@ part", redactUser(u))
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", fmt.Errorf("%q must not have a query or fragment", redactRaw(raw))
	}
	if p := u.Port(); p != "" {
		if n, err := parsePort(p); err != nil || n == 0 {
			return "", fmt.Errorf("%q has an invalid port %q", redactRaw(raw), p)
		}
	}
	return s, nil
}

// redactRaw hides a user:password@ part in a URL that may not parse, so
// error messages never carry credentials.
func redactRaw(raw string) string {
	start := 0
	if k := strings.Index(raw, "://"); k >= 0 {
		start = k + 3
	}
	end := len(raw)
	if k := strings.IndexAny(raw[start:], "/?#"); k >= 0 {
		end = start + k
	}
	if at := strings.LastIndex(raw[start:end], "@"); at >= 0 {
		return raw[:start] + "REDACTED" + raw[start+at:]
	}
	return raw
}

func redactUser(u *url.URL) string {
	r := *u
	r.User = url.User("REDACTED")
	return r.String()
}

func parsePort(p string) (int, error) {
	n := 0
	for _, ch := range p {
		if ch < '0' || ch > '9' {
			return 0, errors.New("not a number")
		}
		n = n*10 + int(ch-'0')
		if n > 65535 {
			return 0, errors.New("out of range")
		}
	}
	return n, nil
}
