// Package e2e runs the real mender-agent binary end to end: a private
// dbus-daemon loading the shipped policy, the local test server over TLS on
// 127.0.0.1 with a CA made per test, and the daemon with all state in a
// temporary directory. Consumers are the agent's own `token` command and the
// stock busctl tool.
//
// It is test-only and may import anything in the module.
package e2e
