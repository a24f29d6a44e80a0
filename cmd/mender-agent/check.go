package main

import (
	"context"
	"fmt"

	"github.com/mender-agent/mender-agent/trust"
)

func checkCommand() *command {
	return &command{
		name:    "check",
		summary: "diagnose the setup: configuration, device key, trust and each server's TLS",
		run: func(ctx context.Context, g *globals, _ []string, std stdio) error {
			ok := true
			report := func(pass bool, what, detail string) {
				mark := "PASS"
				if !pass {
					mark, ok = "FAIL", false
				}
				fmt.Fprintf(std.out, "%s  %-28s %s\n", mark, what, detail)
			}
			env, err := g.load(std.err)
			if err != nil {
				report(false, "configuration", err.Error())
				return &exitError{code: exitFailure, err: fmt.Errorf("")}
			}
			defer env.close()
			report(true, "configuration", "loaded")
			servers := env.cfg.ServerURLs()
			if len(servers) == 0 {
				report(false, "servers", "no ServerURL or Servers configured")
			}
			key, err := env.loadKey(ctx, keyRequest{create: false})
			if err != nil {
				report(false, "device key", err.Error())
			} else {
				defer func() { _ = key.close() }()
				info, _ := keyInfo(key)
				report(true, "device key", fmt.Sprintf("%s, %s backend, %s", info.Type, info.Backend, info.Fingerprint))
			}
			store, err := env.newTrust()
			if err != nil {
				report(false, "trust", err.Error())
			} else if len(servers) > 0 {
				if !trust.Check(ctx, store, servers, std.out) {
					ok = false
				}
			}
			if !ok {
				return &exitError{code: exitFailure, err: fmt.Errorf("")}
			}
			return nil
		},
	}
}
