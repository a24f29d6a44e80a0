package trust

import (
	"bytes"
	"testing"

	"github.com/mender-agent/mender-agent/test/testpki"
)

func FuzzParseBundle(f *testing.F) {
	ca := testpki.NewCA("fuzz CA")
	leaf := ca.Issue(testpki.Options{})
	f.Add(ca.CertPEM())
	f.Add(append(ca.CertPEM(), leaf.CertPEM()...))
	f.Add(append(ca.CertPEM(), leaf.KeyPEM()...))
	f.Add(ca.CertPEM()[:200])
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("not pem at all"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, problems := ParseBundle(data)
		last := 0
		for _, p := range problems {
			if p.Index <= last {
				t.Fatalf("problem indexes not increasing: %d after %d", p.Index, last)
			}
			last = p.Index
			if p.Err == nil || p.Error() == "" {
				t.Fatalf("problem %d without a reason", p.Index)
			}
		}
		for _, c := range certs {
			if len(c.Raw) == 0 {
				t.Fatal("certificate without DER")
			}
		}
		if len(certs)+len(problems) == 0 && len(bytes.TrimSpace(data)) > 0 {
			t.Fatalf("non-blank input %q gave neither certificates nor problems", data)
		}
	})
}
