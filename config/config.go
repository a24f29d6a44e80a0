package config

import (
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Default file locations (mender-protocol.md §5.1).
const (
	DefaultMainPath     = "/etc/mender/mender.conf"
	DefaultFallbackPath = "/var/lib/mender/mender.conf"
)

// Device tiers accepted in DeviceTier.
const (
	TierStandard = "standard"
	TierSystem   = "system"
	TierMicro    = "micro"
)

// Key backends accepted in Security.AuthKeyBackend.
const (
	BackendFile = "file"
	BackendTPM  = "tpm"
)

// Key types accepted in Security.AuthKeyType.
const (
	KeyTypeEd25519   = "ed25519"
	KeyTypeECDSAP256 = "ecdsa-p256"
	KeyTypeECDSAP384 = "ecdsa-p384"
	KeyTypeRSA2048   = "rsa-2048"
	KeyTypeRSA3072   = "rsa-3072"
	KeyTypeRSA4096   = "rsa-4096"
)

// KeyTypes lists every accepted Security.AuthKeyType value.
var KeyTypes = []string{KeyTypeEd25519, KeyTypeECDSAP256, KeyTypeECDSAP384, KeyTypeRSA2048, KeyTypeRSA3072, KeyTypeRSA4096}

// DefaultTPMDevice is the TPM used when Security.TPMDevice is not set: the
// kernel's resource manager, so other TPM users can share the chip.
const DefaultTPMDevice = "/dev/tpmrm0"

// TPMSocketPrefix in Security.TPMDevice selects a TPM emulator reached
// through a Unix socket (for example swtpm) instead of a device node.
const TPMSocketPrefix = "unix:"

// Secret is a configuration value that must never be logged, such as the
// tenant token. fmt, logrus and encoding/json print it redacted; call Reveal
// at the one place that sends it.
type Secret string

// String redacts the secret; an empty secret prints as empty so logs still
// show whether one is configured.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString redacts the secret for %#v.
func (s Secret) GoString() string { return `config.Secret("` + s.String() + `")` }

// MarshalJSON redacts the secret, so a Config dumped as JSON (or logged
// with a JSON formatter) does not leak it.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// Config is the merged content of mender.conf: the keys mender-protocol.md
// §5.2 defines plus mender-agent's own settings (under Security and Agent).
// Field names follow Go style; the json tags are the file's key names, which
// are matched case-insensitively. A Config is a plain value: it is safe for
// concurrent reads, and callers that change it (command-line overrides)
// should call Validate again.
type Config struct {
	// ServerURL is the single server; mutually exclusive with Servers.
	ServerURL string `json:"ServerURL"`
	// Servers is the failover list, tried in order; de-duplicated on load.
	Servers []Server `json:"Servers"`
	// TenantToken is sent as tenant_token in auth requests.
	TenantToken Secret `json:"TenantToken"`
	// DeviceTier is standard (default), system or micro.
	DeviceTier string `json:"DeviceTier"`
	// ServerCertificate is a PEM file whose certificates are added to the
	// system trust store.
	ServerCertificate string `json:"ServerCertificate"`
	// SkipVerify disables server certificate verification.
	SkipVerify bool `json:"SkipVerify"`
	// HTTPSClient is the mTLS client identity.
	HTTPSClient HTTPSClient `json:"HttpsClient"`
	// Security holds the auth key settings.
	Security Security `json:"Security"`
	// DBus holds the D-Bus settings.
	DBus DBus `json:"DBus"`
	// RetryPollIntervalSeconds caps retry intervals (0: unset).
	RetryPollIntervalSeconds int `json:"RetryPollIntervalSeconds"`
	// RetryPollCount bounds retries of other Mender tools (0: unset).
	RetryPollCount int `json:"RetryPollCount"`
	// UpdatePollIntervalSeconds is used by mender-update.
	UpdatePollIntervalSeconds int `json:"UpdatePollIntervalSeconds"`
	// InventoryPollIntervalSeconds is used by mender-update.
	InventoryPollIntervalSeconds int `json:"InventoryPollIntervalSeconds"`
	// DaemonLogLevel is a logrus level name; empty means info. The
	// command-line --log-level wins over it.
	DaemonLogLevel string `json:"DaemonLogLevel"`
	// ArtifactVerifyKey is one artifact verification public key (PEM path);
	// mutually exclusive with ArtifactVerifyKeys.
	ArtifactVerifyKey string `json:"ArtifactVerifyKey"`
	// ArtifactVerifyKeys are verification keys tried in order.
	ArtifactVerifyKeys []string `json:"ArtifactVerifyKeys"`
	// Connectivity is accepted for compatibility with Mender 3.x and ignored.
	Connectivity Connectivity `json:"Connectivity"`
	// Agent holds mender-agent's own settings.
	Agent Agent `json:"Agent"`

	// sources maps a dotted field path to the file that last set it.
	sources map[string]string
}

// Server is one entry of Servers.
type Server struct {
	ServerURL string `json:"ServerURL"`
}

// HTTPSClient is the HttpsClient object: the mTLS client certificate and key.
type HTTPSClient struct {
	// Certificate is the client certificate PEM file (leaf first, then chain).
	Certificate string `json:"Certificate"`
	// Key is the client key file or a pkcs11: URI.
	Key string `json:"Key"`
	// SSLEngine is the OpenSSL engine id of Key (upstream compatibility).
	SSLEngine string `json:"SSLEngine"`
}

// Security is the Security object: the auth signing key.
type Security struct {
	// AuthPrivateKey is a provisioned ("static") auth key: never generated
	// or overwritten.
	AuthPrivateKey string `json:"AuthPrivateKey"`
	// SSLEngine is the OpenSSL engine id of AuthPrivateKey (upstream
	// compatibility).
	SSLEngine string `json:"SSLEngine"`
	// AuthKeyType is the type of a newly generated key; empty means the
	// backend's default (see Config.KeyType).
	AuthKeyType string `json:"AuthKeyType"`
	// AuthKeyBackend is file (default) or tpm.
	AuthKeyBackend string `json:"AuthKeyBackend"`
	// TPMDevice is the TPM device node, or unix:PATH for an emulator socket.
	TPMDevice string `json:"TPMDevice"`
	// TPMParentPasswordFile holds the authorization value of the TPM's
	// storage hierarchy, when the owner set one.
	TPMParentPasswordFile string `json:"TPMParentPasswordFile"`
	// TPMFallbackToFile makes the agent use the file backend when no TPM is
	// present instead of failing.
	TPMFallbackToFile bool `json:"TPMFallbackToFile"`
	// TPMRegenerateOnClear allows a new TPM key when the TPM was cleared and
	// the old key can no longer be loaded (the device becomes a new pending
	// device on the server).
	TPMRegenerateOnClear bool `json:"TPMRegenerateOnClear"`
}

// DBus is the DBus object.
type DBus struct {
	// Enabled exports io.mender.Authentication1 (default true).
	Enabled bool `json:"Enabled"`
}

// Connectivity is the Mender 3.x Connectivity object, accepted and ignored.
type Connectivity struct {
	DisableKeepAlive       bool `json:"DisableKeepAlive"`
	IdleConnTimeoutSeconds int  `json:"IdleConnTimeoutSeconds"`
}

// Agent is mender-agent's own top-level Agent object.
type Agent struct {
	// RenewAtFraction is the fraction of a token's lifetime after which it is
	// renewed, in (0,1).
	RenewAtFraction float64 `json:"RenewAtFraction"`
	// RenewJitterFraction is the random spread of the renewal time, as a
	// fraction of the lifetime, in [0,1).
	RenewJitterFraction float64 `json:"RenewJitterFraction"`
	// RenewMarginSeconds is the latest a token is renewed before it expires.
	RenewMarginSeconds int `json:"RenewMarginSeconds"`
	// BackoffMinSeconds is the first retry delay after a failure.
	BackoffMinSeconds int `json:"BackoffMinSeconds"`
	// BackoffMaxSeconds caps the retry delay; 0 follows
	// RetryPollIntervalSeconds, or 300 s when that is unset too.
	BackoffMaxSeconds int `json:"BackoffMaxSeconds"`
	// TokenCache keeps the token in the data directory across restarts.
	TokenCache bool `json:"TokenCache"`
	// IdentityTimeoutSeconds bounds the identity script's run time.
	IdentityTimeoutSeconds int `json:"IdentityTimeoutSeconds"`
	// ClientCertExpiryWarningDays warns when the mTLS client certificate
	// expires within that many days (0: never).
	ClientCertExpiryWarningDays int `json:"ClientCertExpiryWarningDays"`
	// ForwarderEnabled runs the loopback forwarder whose URL is handed to
	// consumers with the token.
	ForwarderEnabled bool `json:"ForwarderEnabled"`
	// ForwarderIdleTimeoutSeconds closes idle forwarded connections.
	ForwarderIdleTimeoutSeconds int `json:"ForwarderIdleTimeoutSeconds"`
}

// Defaults of the Agent object and of the backoff ceiling.
const (
	DefaultRenewAtFraction             = 0.75
	DefaultRenewJitterFraction         = 0.05
	DefaultRenewMarginSeconds          = 300
	DefaultBackoffMinSeconds           = 5
	DefaultBackoffMaxSeconds           = 300
	DefaultIdentityTimeoutSeconds      = 10
	DefaultClientCertExpiryWarningDays = 30
	DefaultForwarderIdleTimeoutSeconds = 300
)

// Default returns the configuration used when no file sets anything.
func Default() *Config {
	return &Config{
		DeviceTier: TierStandard,
		DBus:       DBus{Enabled: true},
		Security: Security{
			AuthKeyBackend: BackendFile,
			TPMDevice:      DefaultTPMDevice,
		},
		Agent: Agent{
			RenewAtFraction:             DefaultRenewAtFraction,
			RenewJitterFraction:         DefaultRenewJitterFraction,
			RenewMarginSeconds:          DefaultRenewMarginSeconds,
			BackoffMinSeconds:           DefaultBackoffMinSeconds,
			BackoffMaxSeconds:           0,
			TokenCache:                  true,
			IdentityTimeoutSeconds:      DefaultIdentityTimeoutSeconds,
			ClientCertExpiryWarningDays: DefaultClientCertExpiryWarningDays,
			ForwarderEnabled:            true,
			ForwarderIdleTimeoutSeconds: DefaultForwarderIdleTimeoutSeconds,
		},
	}
}

// KeyType returns the key type to generate: Security.AuthKeyType when set,
// otherwise the backend's default (ecdsa-p256 for tpm, which every TPM 2.0
// supports; ed25519 for file).
func (c *Config) KeyType() string {
	if c.Security.AuthKeyType != "" {
		return c.Security.AuthKeyType
	}
	if c.Security.AuthKeyBackend == BackendTPM {
		return KeyTypeECDSAP256
	}
	return KeyTypeEd25519
}

// ServerURLs returns the servers to try, in order: Servers when set,
// otherwise ServerURL, otherwise none.
func (c *Config) ServerURLs() []string {
	if len(c.Servers) > 0 {
		urls := make([]string, len(c.Servers))
		for i, s := range c.Servers {
			urls[i] = s.ServerURL
		}
		return urls
	}
	if c.ServerURL != "" {
		return []string{c.ServerURL}
	}
	return nil
}

// VerifyKeys returns the artifact verification key paths, in order:
// ArtifactVerifyKeys when set, otherwise ArtifactVerifyKey, otherwise none.
func (c *Config) VerifyKeys() []string {
	if len(c.ArtifactVerifyKeys) > 0 {
		return append([]string(nil), c.ArtifactVerifyKeys...)
	}
	if c.ArtifactVerifyKey != "" {
		return []string{c.ArtifactVerifyKey}
	}
	return nil
}

// LogLevel returns DaemonLogLevel as a logrus level; info when unset.
// Validate has rejected unknown names.
func (c *Config) LogLevel() logrus.Level {
	if c.DaemonLogLevel == "" {
		return logrus.InfoLevel
	}
	lvl, err := logrus.ParseLevel(c.DaemonLogLevel)
	if err != nil {
		return logrus.InfoLevel
	}
	return lvl
}

// TPMSocket reports whether Security.TPMDevice names an emulator socket and
// returns its path.
func (c *Config) TPMSocket() (path string, ok bool) {
	return strings.CutPrefix(c.Security.TPMDevice, TPMSocketPrefix)
}

// Source returns the file that set the field at the dotted path (for
// example "Security.AuthKeyType" or "Servers"), or "" for a default.
// Paths are matched case-insensitively.
func (c *Config) Source(path string) string {
	return c.sources[strings.ToLower(path)]
}

func seconds(n int) time.Duration { return time.Duration(n) * time.Second }

// RetryPollInterval returns RetryPollIntervalSeconds (0 when unset).
func (c *Config) RetryPollInterval() time.Duration { return seconds(c.RetryPollIntervalSeconds) }

// UpdatePollInterval returns UpdatePollIntervalSeconds (0 when unset).
func (c *Config) UpdatePollInterval() time.Duration { return seconds(c.UpdatePollIntervalSeconds) }

// InventoryPollInterval returns InventoryPollIntervalSeconds (0 when unset).
func (c *Config) InventoryPollInterval() time.Duration {
	return seconds(c.InventoryPollIntervalSeconds)
}

// RenewMargin returns Agent.RenewMarginSeconds.
func (c *Config) RenewMargin() time.Duration { return seconds(c.Agent.RenewMarginSeconds) }

// BackoffMin returns Agent.BackoffMinSeconds.
func (c *Config) BackoffMin() time.Duration { return seconds(c.Agent.BackoffMinSeconds) }

// BackoffMax returns the retry delay ceiling: Agent.BackoffMaxSeconds when
// set, else RetryPollIntervalSeconds when set, else 300 s; never below
// BackoffMin.
func (c *Config) BackoffMax() time.Duration {
	d := seconds(DefaultBackoffMaxSeconds)
	switch {
	case c.Agent.BackoffMaxSeconds > 0:
		d = seconds(c.Agent.BackoffMaxSeconds)
	case c.RetryPollIntervalSeconds > 0:
		d = seconds(c.RetryPollIntervalSeconds)
	}
	return max(d, c.BackoffMin())
}

// IdentityTimeout returns Agent.IdentityTimeoutSeconds.
func (c *Config) IdentityTimeout() time.Duration { return seconds(c.Agent.IdentityTimeoutSeconds) }

// ClientCertExpiryWarning returns Agent.ClientCertExpiryWarningDays as a
// duration (0: never warn).
func (c *Config) ClientCertExpiryWarning() time.Duration {
	return time.Duration(c.Agent.ClientCertExpiryWarningDays) * 24 * time.Hour
}

// ForwarderIdleTimeout returns Agent.ForwarderIdleTimeoutSeconds.
func (c *Config) ForwarderIdleTimeout() time.Duration {
	return seconds(c.Agent.ForwarderIdleTimeoutSeconds)
}
