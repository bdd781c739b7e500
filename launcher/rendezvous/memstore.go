package rendezvous

import (
	"context"
	"fmt"
	"sync"
)

// MemStore is the in-process twin of a Server and its Clients, for tests
// whose ranks are goroutines of one process. It enforces the same key and
// value limits as the network protocol. Its methods are safe for concurrent
// use.
type MemStore struct {
	size int

	mu    sync.Mutex
	kv    map[string][]byte
	ready map[string]chan struct{} // closed when the key is first set
	count int                      // callers waiting at the current fence
	gen   chan struct{}            // closed when the current fence completes
}

// NewMemStore returns an empty store for a job of size ranks (size >= 1;
// smaller values are treated as 1).
func NewMemStore(size int) *MemStore {
	return &MemStore{
		size:  max(size, 1),
		kv:    make(map[string][]byte),
		ready: make(map[string]chan struct{}),
		gen:   make(chan struct{}),
	}
}

// Set stores a copy of value under key, replacing any earlier value, and
// wakes the Gets waiting for key.
func (m *MemStore) Set(ctx context.Context, key string, value []byte) error {
	if err := checkKV(key, value); err != nil {
		return fmt.Errorf("rendezvous: set %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rendezvous: set %q: %w", key, err)
	}
	v := append([]byte{}, value...)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.kv[key]; !ok && len(m.kv) >= MaxKeys {
		return fmt.Errorf("rendezvous: set %q: %w: store full: %d keys", key, ErrRefused, MaxKeys)
	}
	m.kv[key] = v
	if ch, ok := m.ready[key]; ok {
		close(ch)
		delete(m.ready, key)
	}
	return nil
}

// Get returns a copy of the value of key, waiting until it is set or ctx
// ends. The returned slice is owned by the caller and never nil on success.
func (m *MemStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := checkKV(key, nil); err != nil {
		return nil, fmt.Errorf("rendezvous: get %q: %w", key, err)
	}
	for {
		m.mu.Lock()
		if v, ok := m.kv[key]; ok {
			m.mu.Unlock()
			return append([]byte{}, v...), nil
		}
		ch, ok := m.ready[key]
		if !ok {
			ch = make(chan struct{})
			m.ready[key] = ch
		}
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("rendezvous: get %q: %w", key, ctx.Err())
		}
	}
}

// Fence returns once size callers have called it; it is reusable, each
// completed group of size calls forming one generation. If ctx ends first,
// the call is withdrawn from the generation (unless the generation completed
// meanwhile, in which case Fence returns nil).
func (m *MemStore) Fence(ctx context.Context) error {
	m.mu.Lock()
	gen := m.gen
	m.count++
	if m.count == m.size {
		close(gen)
		m.gen = make(chan struct{})
		m.count = 0
		m.mu.Unlock()
		return nil
	}
	m.mu.Unlock()
	select {
	case <-gen:
		return nil
	case <-ctx.Done():
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gen != gen { // completed while we were giving up
		return nil
	}
	m.count--
	return fmt.Errorf("rendezvous: fence: %w", ctx.Err())
}
