package keystore_test

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mender-agent/mender-agent/keystore"
)

// Example shows the daemon's use: load the device key, generating it on
// first start, and sign an auth request body. Ed25519 (the default) signs
// the raw body; RSA and ECDSA keys sign its SHA-256 digest instead.
func Example() {
	dir, err := os.MkdirTemp("", "keystore-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "mender", keystore.DefaultFileName)

	key, err := keystore.LoadOrCreate(keystore.Options{Path: path, Generate: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	body := []byte(`{"id_data":"{\"mac\":\"02:12:61:13:6c:42\"}","pubkey":"...","tenant_token":""}`)
	sig, err := key.Sign(rand.Reader, body, crypto.Hash(0))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("type:", key.Type())
	fmt.Println("verifies:", ed25519.Verify(key.Public().(ed25519.PublicKey), body, sig))

	// The next start loads the same key.
	again, err := keystore.LoadOrCreate(keystore.Options{Path: path, Generate: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("same key:", again.Fingerprint() == key.Fingerprint())
	fi, _ := os.Stat(path)
	fmt.Println("mode:", fi.Mode().Perm())
	// Output:
	// type: ed25519
	// verifies: true
	// same key: true
	// mode: -rw-------
}
