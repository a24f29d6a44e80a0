package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"time"
)

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print the version, build time and Go runtime",
		run: func(_ context.Context, _ *globals, _ []string, std stdio) error {
			return printVersion(std.out)
		},
	}
}

func printVersion(w io.Writer) error {
	bt := buildTime
	if bt == "" {
		bt = "unknown"
	}
	_, err := fmt.Fprintf(w, "mender-agent %s (built %s, %s, %s/%s)\n", version, bt, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}

// builtAt returns the stamped build time, or the zero time when the binary
// was built without one.
func builtAt() time.Time {
	t, err := time.Parse(time.RFC3339, buildTime)
	if err != nil {
		return time.Time{}
	}
	return t
}

// userAgent is sent with every request to the server.
func userAgent() string {
	return "mender-agent/" + version + " (" + runtime.GOOS + "; " + runtime.GOARCH + ")"
}
