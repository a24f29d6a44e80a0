package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/mender-agent/mender-agent/config"
)

// Default locations, overridable by the environment variables upstream
// Mender clients honour.
const (
	defaultConfDir      = "/etc/mender"
	defaultDatastoreDir = "/var/lib/mender"
	configFileName      = "mender.conf"
	keyFileName         = "mender-agent.pem"
)

// globals holds the options every command accepts.
type globals struct {
	configPath   string
	fallbackPath string
	dataDir      string
	logLevel     string
	logFile      string
	trustedCerts string
	skipVerify   bool

	env func(string) string
}

func (g *globals) register(o *options) {
	o.String(&g.configPath, "c", "config", "FILE", g.configPath, "main configuration file (default $MENDER_CONF_DIR/mender.conf)")
	o.String(&g.fallbackPath, "b", "fallback-config", "FILE", g.fallbackPath, "fallback configuration file, read first (default DATA/mender.conf)")
	o.String(&g.dataDir, "d", "data", "DIR", g.dataDir, "data store directory for the key and token cache (default $MENDER_DATASTORE_DIR or /var/lib/mender)")
	o.String(&g.logLevel, "l", "log-level", "LEVEL", g.logLevel, "log level: panic, fatal, error, warning, info, debug, trace (default DaemonLogLevel or info)")
	o.String(&g.logFile, "L", "log-file", "FILE", g.logFile, "append logs to FILE instead of standard error")
	o.String(&g.trustedCerts, "E", "trusted-certs", "FILE", g.trustedCerts, "server CA bundle, replacing ServerCertificate")
	o.Bool(&g.skipVerify, "", "skipverify", "do not verify the server's certificate (insecure; for tests only)")
}

func (g *globals) getenv(k string) string {
	if g.env == nil {
		return os.Getenv(k)
	}
	return g.env(k)
}

// datastore returns the data directory.
func (g *globals) datastore() string {
	if g.dataDir != "" {
		return g.dataDir
	}
	if d := g.getenv("MENDER_DATASTORE_DIR"); d != "" {
		return d
	}
	return defaultDatastoreDir
}

func (g *globals) mainConfig() (string, bool) {
	if g.configPath != "" {
		return g.configPath, true
	}
	dir := g.getenv("MENDER_CONF_DIR")
	if dir == "" {
		dir = defaultConfDir
	}
	return filepath.Join(dir, configFileName), false
}

func (g *globals) fallbackConfig() (string, bool) {
	if g.fallbackPath != "" {
		return g.fallbackPath, true
	}
	return filepath.Join(g.datastore(), configFileName), false
}

// environment is what every command that reads the configuration gets.
type environment struct {
	// clientKeys keeps the mTLS key loaded across trust reloads.
	clientKeys clientKeyCache

	cfg     *config.Config
	log     *logrus.Logger
	dataDir string
	closers []io.Closer
}

func (e *environment) close() {
	_ = e.clientKeys.Close()
	for _, c := range e.closers {
		_ = c.Close()
	}
}

// component returns the logger for one component.
func (e *environment) component(name string) *logrus.Entry {
	return e.log.WithField(fieldComponent, name)
}

// Log field names used by the command.
const (
	fieldComponent = "component"
	fieldPath      = "path"
	fieldServer    = "server"
)

// load reads the configuration and sets up logging. Command-line options
// override the files.
func (g *globals) load(stderr io.Writer) (*environment, error) {
	log := logrus.New()
	log.SetOutput(stderr)
	log.SetFormatter(newFormatter(g.getenv))
	env := &environment{log: log, dataDir: g.datastore()}
	if g.logLevel != "" {
		lvl, err := logrus.ParseLevel(g.logLevel)
		if err != nil {
			return nil, usagef("--log-level %q: want panic, fatal, error, warning, info, debug or trace", g.logLevel)
		}
		log.SetLevel(lvl)
	}
	if g.logFile != "" {
		f, err := os.OpenFile(g.logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open log file: %w", err)
		}
		env.closers = append(env.closers, f)
		log.SetOutput(f)
		log.SetFormatter(&logrus.TextFormatter{DisableColors: true, FullTimestamp: true})
	}
	mainPath, mainExplicit := g.mainConfig()
	fbPath, fbExplicit := g.fallbackConfig()
	cfg, err := config.Load(config.LoadOptions{
		MainPath: mainPath, MainExplicit: mainExplicit,
		FallbackPath: fbPath, FallbackExplicit: fbExplicit,
		Logger: log.WithField(fieldComponent, "config"),
	})
	if err != nil {
		env.close()
		return nil, err
	}
	if g.logLevel == "" {
		log.SetLevel(cfg.LogLevel())
	}
	if g.trustedCerts != "" {
		cfg.ServerCertificate = g.trustedCerts
	}
	if g.skipVerify {
		cfg.SkipVerify = true
	}
	if err := cfg.Validate(); err != nil {
		env.close()
		return nil, err
	}
	env.cfg = cfg
	return env, nil
}

// newFormatter returns plain text; under systemd (JOURNAL_STREAM set) it
// leaves timestamps to journald.
func newFormatter(getenv func(string) string) logrus.Formatter {
	if getenv("JOURNAL_STREAM") != "" {
		return &logrus.TextFormatter{DisableTimestamp: true, DisableColors: true}
	}
	return &logrus.TextFormatter{FullTimestamp: true, DisableColors: true}
}

// keyPath returns the device key path: Security.AuthPrivateKey when set
// (a static key), else DATA/mender-agent.pem.
func (e *environment) keyPath() (path string, static bool) {
	if p := strings.TrimSpace(e.cfg.Security.AuthPrivateKey); p != "" {
		return p, true
	}
	return filepath.Join(e.dataDir, keyFileName), false
}
