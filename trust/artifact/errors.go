package artifact

import "errors"

// ErrInvalid is wrapped by every error that rejects the Artifact itself
// (bad structure, bad hash, bad or missing signature, truncation). Errors
// that do not wrap it are about reading the input or the configuration.
var ErrInvalid = errors.New("invalid artifact")

// ErrBadSignature means manifest.sig did not verify under any configured
// key. It is always returned inside an [*Error], which also wraps ErrInvalid.
var ErrBadSignature = errors.New("signature does not verify")

// ErrUnsigned means the Artifact has no manifest.sig although verification
// keys are configured. It is always returned inside an [*Error].
var ErrUnsigned = errors.New("artifact is not signed")

// ErrNoKeys means Verify was called without keys and without
// Options.IntegrityOnly: refusing is safer than silently skipping the
// signature check. It is a configuration error, not an invalid Artifact.
var ErrNoKeys = errors.New("no artifact verification keys configured; set ArtifactVerifyKey(s) or pass -k")

// Error is the rejection of an Artifact: Path names the member or payload
// file at fault (for example "data/0000/rootfs.ext4") and Reason says what
// is wrong with it. It matches ErrInvalid with errors.Is, and Err (if any)
// as well.
type Error struct {
	Path   string
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

// Unwrap returns ErrInvalid and the underlying cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInvalid}
	}
	return []error{ErrInvalid, e.Err}
}

// invalid builds an *Error; reason is a complete lowercase phrase.
func invalid(path, reason string) *Error { return &Error{Path: path, Reason: reason} }

// invalidErr builds an *Error around a cause; the reason is the cause's text.
func invalidErr(path string, err error) *Error {
	return &Error{Path: path, Reason: err.Error(), Err: err}
}

// Exit codes for a command-line verifier.
const (
	ExitValid   = 0 // the Artifact verified
	ExitInvalid = 1 // the Artifact was rejected
	ExitUsage   = 2 // usage, configuration, unreadable key or input
)

// ExitCode maps the result of Verify (or LoadKeys) to the exit code of
// `verify-artifact`: 0 valid, 1 invalid Artifact, 2 for anything else
// (usage, unreadable key, unreadable input).
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitValid
	case errors.Is(err, ErrInvalid):
		return ExitInvalid
	default:
		return ExitUsage
	}
}
