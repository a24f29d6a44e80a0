package tpm

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scriptedTPM answers each Send with the next response code.
type scriptedTPM struct {
	codes []tpm2.TPMRC
	sent  int
}

func (s *scriptedTPM) Send(cmd []byte) ([]byte, error) {
	rc := s.codes[min(s.sent, len(s.codes)-1)]
	s.sent++
	rsp := make([]byte, 10)
	binary.BigEndian.PutUint16(rsp[0:], uint16(tpm2.TPMSTNoSessions))
	binary.BigEndian.PutUint32(rsp[2:], 10)
	binary.BigEndian.PutUint32(rsp[6:], uint32(rc))
	return rsp, nil
}

func TestRetryTPM(t *testing.T) {
	tests := []struct {
		name      string
		codes     []tpm2.TPMRC
		wantSends int
		wantRC    tpm2.TPMRC
	}{
		{name: "success at once", codes: []tpm2.TPMRC{tpm2.TPMRCSuccess}, wantSends: 1},
		{name: "retry then success", codes: []tpm2.TPMRC{tpm2.TPMRCRetry, tpm2.TPMRCRetry, tpm2.TPMRCSuccess}, wantSends: 3},
		{name: "yielded and testing are retried", codes: []tpm2.TPMRC{tpm2.TPMRCYielded, tpm2.TPMRCTesting, tpm2.TPMRCSuccess}, wantSends: 3},
		{name: "other errors are not retried", codes: []tpm2.TPMRC{tpm2.TPMRCLockout}, wantSends: 1, wantRC: tpm2.TPMRCLockout},
		{name: "gives up after the last try", codes: []tpm2.TPMRC{tpm2.TPMRCRetry}, wantSends: retryTries, wantRC: tpm2.TPMRCRetry},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &scriptedTPM{codes: tc.codes}
			var waits []time.Duration
			r := retryTPM{ctx: context.Background(), next: fake, sleep: func(_ context.Context, d time.Duration) error {
				waits = append(waits, d)
				return nil
			}}
			rsp, err := r.Send([]byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x7b})
			require.NoError(t, err)
			assert.Equal(t, tc.wantSends, fake.sent)
			assert.Equal(t, uint32(tc.wantRC), binary.BigEndian.Uint32(rsp[6:]))
			require.Len(t, waits, tc.wantSends-1)
			for i, w := range waits {
				assert.LessOrEqual(t, w, retryMax, "wait %d", i)
				if i > 0 {
					assert.GreaterOrEqual(t, w, waits[i-1], "backoff must not shrink")
				}
			}
		})
	}
}

func TestRetryTPMStopsWithContext(t *testing.T) {
	fake := &scriptedTPM{codes: []tpm2.TPMRC{tpm2.TPMRCRetry}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := retryTPM{ctx: ctx, next: fake, sleep: sleepCtx}
	_, err := r.Send(make([]byte, 10))
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "TPM_RC_RETRY")
	assert.Equal(t, 1, fake.sent)
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantIs  error
		wantMsg string
	}{
		{name: "lockout", err: tpm2.TPMRCLockout, wantIs: ErrLockout, wantMsg: "tpm2_dictionarylockout --clear-lockout"},
		{name: "bad owner auth", err: tpm2.TPMRC(0x9a2), wantIs: tpm2.TPMRCBadAuth, wantMsg: "parent password"},
		{name: "other", err: errors.New("boom"), wantMsg: "op: boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := classify("op", tc.err)
			if tc.wantIs != nil {
				assert.ErrorIs(t, err, tc.wantIs)
			}
			assert.ErrorIs(t, err, tc.err)
			assert.Contains(t, err.Error(), tc.wantMsg)
		})
	}
}
