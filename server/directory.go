package server

import (
	"context"
	"errors"
	"sync"

	"github.com/mqtter/mqtter/server/store"
)

// maxCached bounds each of the directory's maps; past it the map starts over.
const maxCached = 100_000

// directory caches relations and groups, which every send checks and which
// change rarely. All changes go through this server, which forgets the
// entries it changes after they commit; a generation counter keeps a read
// that raced a change from caching the old value.
type directory struct {
	db relationStore

	mu     sync.RWMutex
	gen    uint64
	rels   map[[2]string]cachedRelation
	groups map[string]cachedGroup
}

type cachedRelation struct {
	rel   store.Relation
	found bool
}

type cachedGroup struct {
	group store.Group
	found bool
}

func newDirectory(db relationStore) *directory {
	return &directory{db: db, rels: make(map[[2]string]cachedRelation), groups: make(map[string]cachedGroup)}
}

// lasting caches values that never change once stored (the kind of an
// account, the account of a bound device): read through on a miss, and
// started over when full, so it stays bounded. Errors are not cached.
type lasting[V any] struct {
	mu sync.RWMutex
	m  map[string]V
}

// get returns the value of key, from load on a miss.
func (c *lasting[V]) get(key string, load func() (V, error)) (V, error) {
	c.mu.RLock()
	v, ok := c.m[key]
	c.mu.RUnlock()
	if ok {
		return v, nil
	}
	v, err := load()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCached {
		c.m = make(map[string]V)
	}
	c.m[key] = v
	c.mu.Unlock()
	return v, nil
}

// forget drops key, whose value changed after all (a retired device id).
func (c *lasting[V]) forget(key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}

func pairKey(x, y string) [2]string {
	if x < y {
		return [2]string{x, y}
	}
	return [2]string{y, x}
}

// relation returns the relation between x and y and whether there is one.
func (d *directory) relation(ctx context.Context, x, y string) (store.Relation, bool, error) {
	key := pairKey(x, y)
	d.mu.RLock()
	c, ok := d.rels[key]
	gen := d.gen
	d.mu.RUnlock()
	if ok {
		return c.rel, c.found, nil
	}
	rel, err := d.db.Relation(ctx, x, y)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return rel, false, err
	}
	d.mu.Lock()
	if d.gen == gen {
		if len(d.rels) >= maxCached {
			d.rels = make(map[[2]string]cachedRelation)
		}
		d.rels[key] = cachedRelation{rel, found}
	}
	d.mu.Unlock()
	return rel, found, nil
}

// group returns the group with feeds and whether it exists.
func (d *directory) group(ctx context.Context, feeds string) (store.Group, bool, error) {
	d.mu.RLock()
	c, ok := d.groups[feeds]
	gen := d.gen
	d.mu.RUnlock()
	if ok {
		return c.group, c.found, nil
	}
	g, err := d.db.Group(ctx, feeds)
	found := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return g, false, err
	}
	d.mu.Lock()
	if d.gen == gen {
		if len(d.groups) >= maxCached {
			d.groups = make(map[string]cachedGroup)
		}
		d.groups[feeds] = cachedGroup{g, found}
	}
	d.mu.Unlock()
	return g, found, nil
}

// forget drops the cached relation between x and y.
func (d *directory) forget(x, y string) {
	d.mu.Lock()
	d.gen++
	delete(d.rels, pairKey(x, y))
	d.mu.Unlock()
}

// forgetGroup drops the cached group.
func (d *directory) forgetGroup(feeds string) {
	d.mu.Lock()
	d.gen++
	delete(d.groups, feeds)
	d.mu.Unlock()
}
