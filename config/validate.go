package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"
)

// fieldErr reports a problem with one field, naming the file that set it.
func (c *Config) fieldErr(field, msg string) *FieldError {
	return c.fieldErrFrom(field, field, msg)
}

// fieldErrFrom is fieldErr for a field (for example Servers[1].ServerURL)
// whose file is recorded under another path (Servers).
func (c *Config) fieldErrFrom(sourceField, field, msg string) *FieldError {
	return &FieldError{File: c.Source(sourceField), Field: field, Msg: msg}
}

// from names the file that set field, for conflict messages.
func (c *Config) from(field string) string {
	if src := c.Source(field); src != "" {
		return field + " (set in " + src + ")"
	}
	return field
}

// Validate checks the configuration: mutually exclusive keys, URLs, enumerated
// values and ranges. Errors name the field, the offending value and, when the
// value came from a file, the file. Tenant tokens and key material are never
// quoted. Validate does no I/O: whether the named files exist is checked by
// the components that read them.
func (c *Config) Validate() error {
	var errs []error
	add := func(err error) { errs = append(errs, err) }

	if c.ServerURL != "" && len(c.Servers) > 0 {
		add(&FieldError{File: c.Source("ServerURL"), Field: "ServerURL",
			Msg: fmt.Sprintf("%s and %s are mutually exclusive; keep only one", c.from("ServerURL"), c.from("Servers"))})
	}
	if c.ArtifactVerifyKey != "" && len(c.ArtifactVerifyKeys) > 0 {
		add(&FieldError{File: c.Source("ArtifactVerifyKey"), Field: "ArtifactVerifyKey",
			Msg: fmt.Sprintf("%s and %s are mutually exclusive; keep only one", c.from("ArtifactVerifyKey"), c.from("ArtifactVerifyKeys"))})
	}
	if c.ServerURL != "" {
		if _, err := normalizeURL(c.ServerURL); err != nil {
			add(c.fieldErr("ServerURL", err.Error()))
		}
	}
	for i, s := range c.Servers {
		if _, err := normalizeURL(s.ServerURL); err != nil {
			add(c.fieldErrFrom("Servers", fmt.Sprintf("Servers[%d].ServerURL", i), err.Error()))
		}
	}
	for i, k := range c.ArtifactVerifyKeys {
		if k == "" {
			add(c.fieldErrFrom("ArtifactVerifyKeys", fmt.Sprintf("ArtifactVerifyKeys[%d]", i), "empty path; remove the entry"))
		}
	}
	if !slices.Contains([]string{TierStandard, TierSystem, TierMicro}, c.DeviceTier) {
		add(c.fieldErr("DeviceTier", fmt.Sprintf("%q is not a device tier; use standard, system or micro", c.DeviceTier)))
	}
	if c.DaemonLogLevel != "" {
		if _, err := logrus.ParseLevel(c.DaemonLogLevel); err != nil {
			add(c.fieldErr("DaemonLogLevel", fmt.Sprintf("%q is not a log level; use panic, fatal, error, warning, info, debug or trace", c.DaemonLogLevel)))
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"RetryPollIntervalSeconds", c.RetryPollIntervalSeconds},
		{"RetryPollCount", c.RetryPollCount},
		{"UpdatePollIntervalSeconds", c.UpdatePollIntervalSeconds},
		{"InventoryPollIntervalSeconds", c.InventoryPollIntervalSeconds},
		{"Agent.RenewMarginSeconds", c.Agent.RenewMarginSeconds},
		{"Agent.BackoffMaxSeconds", c.Agent.BackoffMaxSeconds},
		{"Agent.ClientCertExpiryWarningDays", c.Agent.ClientCertExpiryWarningDays},
	} {
		if f.v < 0 {
			add(c.fieldErr(f.name, fmt.Sprintf("%d is negative; use 0 or more", f.v)))
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"Agent.BackoffMinSeconds", c.Agent.BackoffMinSeconds},
		{"Agent.IdentityTimeoutSeconds", c.Agent.IdentityTimeoutSeconds},
		{"Agent.ForwarderIdleTimeoutSeconds", c.Agent.ForwarderIdleTimeoutSeconds},
	} {
		if f.v <= 0 {
			add(c.fieldErr(f.name, fmt.Sprintf("%d is not positive; use 1 or more", f.v)))
		}
	}
	if b, lo := c.Agent.BackoffMaxSeconds, c.Agent.BackoffMinSeconds; b > 0 && lo > 0 && b < lo {
		add(c.fieldErr("Agent.BackoffMaxSeconds", fmt.Sprintf("%d is below Agent.BackoffMinSeconds (%d)", b, lo)))
	}
	if f := c.Agent.RenewAtFraction; !(f > 0 && f < 1) {
		add(c.fieldErr("Agent.RenewAtFraction", fmt.Sprintf("%v is outside (0,1); use a fraction such as 0.75", f)))
	}
	if f := c.Agent.RenewJitterFraction; !(f >= 0 && f < 1) {
		add(c.fieldErr("Agent.RenewJitterFraction", fmt.Sprintf("%v is outside [0,1); use a fraction such as 0.05", f)))
	}
	if t := c.Security.AuthKeyType; t != "" && !slices.Contains(KeyTypes, t) {
		add(c.fieldErr("Security.AuthKeyType", fmt.Sprintf("%q is not a supported key type; use one of %s", t, strings.Join(KeyTypes, ", "))))
	}
	switch c.Security.AuthKeyBackend {
	case BackendFile:
	case BackendTPM:
		// TPM 2.0 has no Ed25519. Support for the other types varies by
		// chip and is reported by the TPM itself.
		if t := c.KeyType(); t == KeyTypeEd25519 {
			add(c.fieldErr("Security.AuthKeyType", fmt.Sprintf("%q is not available with the tpm backend; use ecdsa-p256 (default), ecdsa-p384 or an RSA type", t)))
		}
	default:
		add(c.fieldErr("Security.AuthKeyBackend", fmt.Sprintf("%q is not a key backend; use file or tpm", c.Security.AuthKeyBackend)))
	}
	if dev := c.Security.TPMDevice; dev == "" {
		add(c.fieldErr("Security.TPMDevice", "empty; use a device such as /dev/tpmrm0 or unix:/path/to/socket"))
	} else if p, ok := c.TPMSocket(); ok && p == "" {
		add(c.fieldErr("Security.TPMDevice", fmt.Sprintf("%q names no socket path; use unix:/path/to/socket", dev)))
	}
	if (c.HTTPSClient.Certificate == "") != (c.HTTPSClient.Key == "") {
		set, unset := "HttpsClient.Certificate", "HttpsClient.Key"
		if c.HTTPSClient.Certificate == "" {
			set, unset = unset, set
		}
		add(c.fieldErr(set, fmt.Sprintf("set without %s; mTLS needs both or neither", unset)))
	}
	return errors.Join(errs...)
}
