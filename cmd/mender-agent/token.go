package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mender-agent/mender-agent/dbus"
)

func tokenCommand() *command {
	var fetch, asJSON, raw, waitSet bool
	var wait = 30 * time.Second
	var address string
	return &command{
		name:    "token",
		summary: "get the device token from the running agent over D-Bus and print its claims",
		flags: func(o *options) {
			o.Bool(&fetch, "", "fetch", "ask the agent to authenticate now and wait for the result")
			o.Func("", "wait", "DURATION", "wait up to DURATION for the agent to appear and hold a token (with --fetch: for the attempt's result; default 30s)", func(s string) error {
				d, err := time.ParseDuration(s)
				if err != nil || d <= 0 {
					return fmt.Errorf("want a positive duration such as 10s, got %q", s)
				}
				wait, waitSet = d, true
				return nil
			})
			o.Bool(&asJSON, "", "json", "print JSON for scripts")
			o.Bool(&raw, "", "raw", "also print the raw token (it is a secret: never paste it into logs)")
			o.String(&address, "", "bus", "ADDRESS", "", "D-Bus address (default $DBUS_SYSTEM_BUS_ADDRESS or the system bus)")
		},
		run: func(ctx context.Context, g *globals, _ []string, std stdio) error {
			conn, err := dbus.Dial(address)
			if err != nil {
				return err
			}
			defer conn.Close()
			start := time.Now()
			deadline := start.Add(wait)
			var jwt, url string
			for {
				if fetch {
					jwt, url, err = dbus.FetchToken(ctx, conn, time.Until(deadline))
				} else {
					jwt, url, err = dbus.GetToken(ctx, conn)
				}
				// A consumer started with the agent waits for it to own
				// its name, as a D-Bus activated consumer would; with
				// --wait it also waits for the agent to hold a token.
				retry := errors.Is(err, dbus.ErrNoAgent) && (fetch || waitSet)
				retry = retry || (err == nil && jwt == "" && !fetch && waitSet)
				if retry && time.Now().Before(deadline) {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(100 * time.Millisecond):
					}
					continue
				}
				break
			}
			if errors.Is(err, dbus.ErrAuthFailed) {
				return &exitError{code: exitFailure, err: fmt.Errorf("no token: the agent's authentication attempt failed (the device may be pending acceptance on the server, or the server unreachable; the agent's log says which)")}
			}
			if err != nil {
				return err
			}
			if jwt == "" {
				return &exitError{code: exitFailure, err: fmt.Errorf("the agent has no token (the device may be pending acceptance on the server; try --fetch)")}
			}
			return printToken(std.out, jwt, url, time.Since(start), asJSON, raw)
		},
	}
}

// tokenReport is what `token --json` prints.
type tokenReport struct {
	ServerURL string         `json:"server_url"`
	Claims    map[string]any `json:"claims"`
	ExpiresIn string         `json:"expires_in,omitempty"`
	TookMS    float64        `json:"took_ms"`
	Token     string         `json:"token,omitempty"`
}

func printToken(w io.Writer, jwt, url string, took time.Duration, asJSON, raw bool) error {
	claims, err := jwtClaims(jwt)
	if err != nil {
		return err
	}
	r := tokenReport{ServerURL: url, Claims: claims, TookMS: float64(took.Microseconds()) / 1000}
	if exp, ok := claims["exp"].(float64); ok {
		r.ExpiresIn = time.Until(time.Unix(int64(exp), 0)).Round(time.Second).String()
	}
	if raw {
		r.Token = jwt
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(w, "server_url: %s\n", r.ServerURL)
	fmt.Fprintln(w, "claims:")
	for _, k := range sortedKeys(claims) {
		v, _ := json.Marshal(claims[k])
		line := fmt.Sprintf("  %s: %s", k, v)
		if (k == "exp" || k == "iat" || k == "nbf") && claims[k] != nil {
			if f, ok := claims[k].(float64); ok {
				line += " (" + time.Unix(int64(f), 0).UTC().Format(time.RFC3339) + ")"
			}
		}
		fmt.Fprintln(w, line)
	}
	if r.ExpiresIn != "" {
		fmt.Fprintf(w, "expires in: %s\n", r.ExpiresIn)
	}
	fmt.Fprintf(w, "took: %.1f ms\n", r.TookMS)
	if raw {
		fmt.Fprintf(w, "token: %s\n", jwt)
	}
	return nil
}

func jwtClaims(jwt string) (map[string]any, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("the agent returned a token that is not a JWT (%d parts)", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, fmt.Errorf("token payload: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, fmt.Errorf("token payload: %w", err)
	}
	return claims, nil
}
