package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/mender-agent/mender-agent/trust/artifact"
)

// verifyMemoryLimit is the Go heap's soft limit while verifying.
const verifyMemoryLimit = 96 << 20

func verifyArtifactCommand() *command {
	var keys []string
	var asJSON bool
	return &command{
		name:    "verify-artifact",
		summary: "verify a Mender Artifact's signature and integrity (exit 0 valid, 1 invalid, 2 usage or unreadable key)",
		usage:   "FILE|-",
		args:    true,
		flags: func(o *options) {
			o.Func("k", "key", "KEY", "trusted public key (repeat for key rotation; default ArtifactVerifyKey(s) from mender.conf)", func(s string) error {
				keys = append(keys, s)
				return nil
			})
			o.Bool(&asJSON, "", "json", "print JSON for scripts")
		},
		run: func(ctx context.Context, g *globals, args []string, std stdio) error {
			if len(args) != 1 {
				return usagef("verify-artifact takes exactly one FILE (or - for standard input)")
			}
			if len(keys) == 0 {
				env, err := g.load(std.err)
				if err != nil {
					return &exitError{code: exitUsage, err: err}
				}
				keys = env.cfg.VerifyKeys()
				if len(keys) == 0 {
					env.close()
					return usagef("no verification key: give -k KEY or set ArtifactVerifyKey(s) in mender.conf")
				}
				env.close()
			}
			pubs, err := artifact.LoadKeys(keys...)
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			var in io.Reader = std.in
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return &exitError{code: exitUsage, err: fmt.Errorf("artifact: %w", err)}
				}
				defer f.Close()
				in = f
			}
			// The xz reader's dictionary may take up to 64 MiB; a soft
			// limit keeps the garbage it makes from doubling that on small
			// devices.
			debug.SetMemoryLimit(verifyMemoryLimit)
			rep, err := artifact.Verify(ctx, in, artifact.Options{Keys: pubs})
			if err != nil {
				// 1: the Artifact is invalid; 2: it could not be read.
				return &exitError{code: artifact.ExitCode(err), err: err}
			}
			if asJSON {
				return rep.WriteJSON(std.out)
			}
			return rep.WriteText(std.out)
		},
	}
}
