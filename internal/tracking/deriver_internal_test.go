package tracking

import "testing"

func TestStateCacheEvicts(t *testing.T) {
	t.Parallel()
	c := newStateCache(2)
	c.put(streamKey{"t", "a"}, foldedState{version: 1})
	c.put(streamKey{"t", "b"}, foldedState{version: 1})
	c.get(streamKey{"t", "a"})
	c.put(streamKey{"t", "c"}, foldedState{version: 1})
	if _, ok := c.get(streamKey{"t", "b"}); ok || c.order.Len() != 2 {
		t.Errorf("least recently used entry not evicted (len %d)", c.order.Len())
	}
	if _, ok := c.get(streamKey{"t", "a"}); !ok {
		t.Error("recently used entry evicted")
	}
}
