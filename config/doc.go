// Package config loads mender.conf the way the Mender clients do and adds
// mender-agent's own settings. It owns the file format: the fallback file
// (/var/lib/mender/mender.conf) is read first and the main file
// (/etc/mender/mender.conf) overrides it per key; keys match
// case-insensitively at every level; nested objects merge field by field and
// arrays are replaced. Syntax errors name the file, line and column, type
// errors the dotted field path and the file; unknown keys are logged as
// warnings because other Mender tools share the file. The loaded Config is
// normalized (server URLs, duplicates) and validated.
//
// The package reads files and nothing else: it does not check that the
// files a Config names exist or hold valid keys or certificates; the
// components that use them do. It imports the standard library and logrus
// only, and must not import any other package of this module.
package config
