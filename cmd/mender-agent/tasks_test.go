package main

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newTestLogger(w io.Writer, f logrus.Formatter) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(w)
	l.SetFormatter(f)
	return l
}

func TestRunTasks(t *testing.T) {
	boom := errors.New("boom")
	waitCancel := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

	t.Run("first error cancels the rest and is returned", func(t *testing.T) {
		stopped := make(chan struct{})
		err := runTasks(context.Background(),
			func(ctx context.Context) error { <-ctx.Done(); close(stopped); return ctx.Err() },
			func(context.Context) error { return boom },
		)
		require.ErrorIs(t, err, boom)
		select {
		case <-stopped:
		default:
			t.Fatal("the other task was not stopped before runTasks returned")
		}
	})
	t.Run("cancellation is reported as context.Canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := runTasks(ctx, waitCancel, waitCancel)
		assert.ErrorIs(t, err, context.Canceled)
	})
	t.Run("a task that returns nil early is an error", func(t *testing.T) {
		err := runTasks(context.Background(), waitCancel, func(context.Context) error { return nil })
		require.Error(t, err)
		assert.Contains(t, err.Error(), "stopped unexpectedly")
	})
}
