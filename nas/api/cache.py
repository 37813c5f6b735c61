"""A small thread-safe LRU of `Predictors` objects per (space, device, run): building one reads a profile, builds
cost tables and may load an accuracy model, which costs far more than predicting hundreds of archs."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable


class LruCache:
    def __init__(self, maxsize: int = 64) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
        value = build()  # outside the lock: two threads may build the same entry, the last one wins
        with self._lock:
            self.misses += 1
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value

    def drop(self, match: Callable[[Hashable], bool]) -> None:
        """Forget every entry whose key matches (e.g. a device that was just replaced)."""
        with self._lock:
            for key in [k for k in self._items if match(k)]:
                del self._items[key]

    def __len__(self) -> int:
        return len(self._items)
