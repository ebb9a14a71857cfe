package dispatch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"inbox/dispatch"
	"inbox/internal/dbtest"
	"inbox/internal/fixture"
	"inbox/store"
)

// countingStore is the real store, counting the forwards it builds; block,
// when set, holds each build until it is closed, and fail makes the next
// build fail.
type countingStore struct {
	*store.Store
	built   atomic.Int64
	started chan struct{}
	block   chan struct{}
	fail    atomic.Bool
}

func (c *countingStore) MessageReceivedPayloads(ctx context.Context, sids []string) (map[string][]byte, error) {
	if c.started != nil {
		c.started <- struct{}{}
	}
	if c.block != nil {
		select {
		case <-c.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if c.fail.CompareAndSwap(true, false) {
		return nil, errors.New("the database went away")
	}
	c.built.Add(int64(len(sids)))
	return c.Store.MessageReceivedPayloads(ctx, sids)
}

func storedBatch(t *testing.T, st *store.Store, n int) []string {
	t.Helper()
	var sids []string
	for i := range n {
		sid := fmt.Sprintf("SMshare%026d", i)
		if _, _, err := st.InsertInboundMessage(t.Context(), fixture.Inbound(sid)); err != nil {
			t.Fatal(err)
		}
		sids = append(sids, sid)
	}
	return sids
}

// The jobs of one batch for three destinations, taken at once: the
// forwards are built once, and every destination gets the same bytes the
// store builds.
func TestABatchsForwardsAreBuiltOnceForEveryDestination(t *testing.T) {
	st := store.New(dbtest.Pool(t, 4))
	sids := storedBatch(t, st, 12)
	want, err := st.MessageReceivedPayloads(t.Context(), sids)
	if err != nil || len(want) != len(sids) {
		t.Fatalf("payloads: %d, %v", len(want), err)
	}
	counting := &countingStore{Store: st, started: make(chan struct{}, 8), block: make(chan struct{})}
	shared := dispatch.SharePayloads(counting)

	const destinations = 3
	got := make([]map[string][]byte, destinations)
	errs := make([]error, destinations)
	var wg sync.WaitGroup
	for i := range destinations {
		wg.Go(func() {
			got[i], errs[i] = shared.MessageReceivedPayloads(t.Context(), append([]string{"SMgone"}, sids...))
		})
	}
	<-counting.started // the first is building; the others wait for it
	close(counting.block)
	wg.Wait()
	for i := range destinations {
		if errs[i] != nil {
			t.Fatalf("destination %d: %v", i, errs[i])
		}
		if len(got[i]) != len(sids) {
			t.Fatalf("destination %d got %d forwards, want %d (none for a message that is not stored)", i, len(got[i]), len(sids))
		}
		for sid, p := range want {
			if !bytes.Equal(got[i][sid], p) {
				t.Fatalf("destination %d, %s: %s, want %s", i, sid, got[i][sid], p)
			}
		}
	}
	if n := counting.built.Load(); n != int64(len(sids)+1) {
		t.Fatalf("the store built %d forwards for %d messages and 3 destinations, want each once", n, len(sids)+1)
	}
}

// A build that fails fails its own caller only: whoever waited for it
// builds the forwards itself.
func TestAFailedSharedBuildIsBuiltAgainByTheOthers(t *testing.T) {
	st := store.New(dbtest.Pool(t, 4))
	sids := storedBatch(t, st, 3)
	counting := &countingStore{Store: st, started: make(chan struct{}, 8), block: make(chan struct{})}
	counting.fail.Store(true)
	shared := dispatch.SharePayloads(counting)

	first := make(chan error, 1)
	go func() {
		_, err := shared.MessageReceivedPayloads(t.Context(), sids)
		first <- err
	}()
	<-counting.started
	second := make(chan map[string][]byte, 1)
	go func() {
		got, err := shared.MessageReceivedPayloads(t.Context(), sids)
		if err != nil {
			t.Error(err)
		}
		second <- got
	}()
	close(counting.block)
	if err := <-first; err == nil {
		t.Fatal("the failed build returned no error")
	}
	<-counting.started // the second builds them itself
	if got := <-second; len(got) != len(sids) {
		t.Fatalf("the second caller got %d forwards, want %d", len(got), len(sids))
	}
}
