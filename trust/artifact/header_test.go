package artifact

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
)

// scriptNameRE is the script name rule as a regular expression: the
// reference validScriptName is checked against. Only tests use regexp; the
// shipped package does not import it.
var scriptNameRE = regexp.MustCompile(`^(Idle|Sync|Download|ArtifactInstall|ArtifactReboot|ArtifactRollback|ArtifactRollbackReboot|ArtifactCommit|ArtifactFailure)_(Enter|Leave|Error)_[0-9]{2}(_[A-Za-z0-9_.,-]+)?$`)

var scriptNameCases = []struct {
	name   string
	script string
	ok     bool
}{
	{name: "every state, enter", script: "Idle_Enter_00", ok: true},
	{name: "sync", script: "Sync_Leave_99", ok: true},
	{name: "download", script: "Download_Error_01", ok: true},
	{name: "artifact install", script: "ArtifactInstall_Enter_00", ok: true},
	{name: "artifact reboot", script: "ArtifactReboot_Leave_10", ok: true},
	{name: "rollback", script: "ArtifactRollback_Enter_05", ok: true},
	{name: "rollback reboot, a state with another state as prefix", script: "ArtifactRollbackReboot_Error_42", ok: true},
	{name: "commit", script: "ArtifactCommit_Leave_10", ok: true},
	{name: "failure", script: "ArtifactFailure_Enter_77", ok: true},
	{name: "description", script: "ArtifactInstall_Enter_00_prep", ok: true},
	{name: "description with every allowed character", script: "Sync_Enter_00_aZ09_.,-", ok: true},
	{name: "description of one character", script: "Sync_Enter_00_x", ok: true},
	{name: "description that is an underscore", script: "Sync_Enter_00__", ok: true},
	{name: "description that looks like a second number", script: "Sync_Enter_00_01", ok: true},

	{name: "empty", script: ""},
	{name: "state only", script: "Idle"},
	{name: "state and underscore", script: "Idle_"},
	{name: "no number", script: "Idle_Enter"},
	{name: "no number after underscore", script: "Idle_Enter_"},
	{name: "one digit", script: "Idle_Enter_0"},
	{name: "three digits", script: "Idle_Enter_000"},
	{name: "non-digit number", script: "Idle_Enter_0a"},
	{name: "non-ASCII digit", script: "Idle_Enter_0\u0661"},
	{name: "unknown state", script: "Reboot_Enter_00"},
	{name: "state prefix only", script: "Artifact_Enter_00"},
	{name: "state in lower case", script: "idle_Enter_00"},
	{name: "state with suffix", script: "IdleX_Enter_00"},
	{name: "unknown action", script: "Idle_Exit_00"},
	{name: "action in lower case", script: "Idle_enter_00"},
	{name: "empty description", script: "Idle_Enter_00_"},
	{name: "no underscore before the description", script: "Idle_Enter_00prep"},
	{name: "space in the description", script: "Idle_Enter_00_a b"},
	{name: "slash in the description", script: "Idle_Enter_00_a/b"},
	{name: "path traversal", script: "../../etc/rc.local"},
	{name: "leading slash", script: "/Idle_Enter_00"},
	{name: "trailing newline", script: "Idle_Enter_00\n"},
	{name: "description with trailing newline", script: "Idle_Enter_00_x\n"},
	{name: "NUL in the description", script: "Idle_Enter_00_a\x00"},
	{name: "non-ASCII description", script: "Idle_Enter_00_é"},
	{name: "double underscore after the state", script: "Idle__Enter_00"},
}

func TestValidScriptName(t *testing.T) {
	for _, tc := range scriptNameCases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.ok, validScriptName(tc.script), "validScriptName(%q)", tc.script)
			assert.Equal(t, tc.ok, scriptNameRE.MatchString(tc.script), "the reference expression disagrees with the table for %q", tc.script)
		})
	}
}

// FuzzScriptName checks validScriptName against the regular expression it
// replaces.
func FuzzScriptName(f *testing.F) {
	for _, tc := range scriptNameCases {
		f.Add(tc.script)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validScriptName(s), scriptNameRE.MatchString(s); got != want {
			t.Fatalf("validScriptName(%q) = %v, the expression says %v", s, got, want)
		}
	})
}
