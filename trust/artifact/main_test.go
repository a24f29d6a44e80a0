package artifact

import (
	"os"
	"testing"
)

// fixtureDir holds files shared by the tests of this binary (keys made
// with openssl, RSA-4096 once); TestMain removes it.
var fixtureDir string

func TestMain(m *testing.M) {
	if runChild() {
		return
	}
	d, err := os.MkdirTemp("", "artifact-test-")
	if err != nil {
		panic(err)
	}
	fixtureDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}
