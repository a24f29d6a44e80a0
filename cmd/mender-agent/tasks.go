package main

import (
	"context"
	"errors"
	"sync"
)

// task is a long-lived component's blocking Run method.
type task func(ctx context.Context) error

// runTasks runs every task until ctx is cancelled or one returns. The first
// task to return (with or without an error) cancels the others; runTasks
// waits for all of them and returns the first real error, or ctx's error
// when the run ended because ctx was cancelled.
func runTasks(ctx context.Context, tasks ...task) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, t := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := t(ctx)
			if err == nil && ctx.Err() == nil {
				err = errors.New("component stopped unexpectedly")
			}
			if err != nil && !errors.Is(err, context.Canceled) {
				once.Do(func() { first = err })
			}
			cancel()
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
