"""Connected components of the duplicate graph, without Ray.

``UnionFind`` serves the pure-Python core (graphs of one build shard or a test);
``component_labels`` is the vectorised numpy version used by the benchmark. The Ray path
uses distributed min-label propagation instead (``ray_components.py``).
"""

from __future__ import annotations

import numpy as np


class UnionFind:
    """Disjoint sets over hashable items, path halving + union by size."""

    def __init__(self) -> None:
        self._parent: dict = {}
        self._size: dict = {}

    def add(self, x) -> None:
        if x not in self._parent:
            self._parent[x] = x
            self._size[x] = 1

    def find(self, x):
        self.add(x)
        parent = self._parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self._size[ra] < self._size[rb]:
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] += self._size[rb]

    def groups(self) -> list[list]:
        """Sets with at least two members, each sorted, in sorted order of their first member."""
        out: dict = {}
        for x in self._parent:
            out.setdefault(self.find(x), []).append(x)
        return sorted((sorted(g) for g in out.values() if len(g) > 1), key=lambda g: g[0])


def component_labels(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Label of each node 0..n-1 = smallest node index in its component.

    Min-label propagation over the edge list with pointer jumping: each round every edge
    pulls both ends to the smaller label, then labels follow their own label chains; rounds
    stay few (logarithmic in the component diameter) and every step is a numpy op over the
    edges, so cost is linear in nodes + edges per round.
    """
    labels = np.arange(n, dtype=np.int64)
    if left.size == 0:
        return labels
    while True:
        low = np.minimum(labels[left], labels[right])
        before = labels.copy()
        np.minimum.at(labels, left, low)
        np.minimum.at(labels, right, low)
        while True:  # pointer jumping: label <- label of label
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
        if np.array_equal(before, labels):
            return labels
