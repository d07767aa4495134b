"""The pipeline editor the mechanical fixes use (`_Editor`).

A lint rule's fix edits a copy of the pipeline's chains: replace, remove or insert elements
between two others. Caps filters left next to each other by a fix are merged into one, a
caps filter a fix strips down to its bare media type (`video/x-raw` once `framerate=` is
gone) is dropped rather than left empty, and a fix that does not apply to the pipeline's
shape (e.g. an element referenced by name) raises `_FixUnavailable` so that it is skipped.
"""

from __future__ import annotations

from dataclasses import replace

from helixdiag.pipeline.syntax import Caps, Node, Pipeline, Ref, Vertex, _render


class _FixUnavailable(Exception):
    """A mechanical fix does not apply to this pipeline's shape (e.g. references)."""


class _Editor:
    """Edits on a copy of a pipeline's chains, for the mechanical fixes."""

    def __init__(self, p: Pipeline) -> None:
        self.p = p
        self.chains: list[list[Node]] = [list(c) for c in p.chains]
        self.replaced: dict[Vertex, Vertex] = {}

    def _current(self, node: Vertex) -> Vertex:
        while node in self.replaced:
            node = self.replaced[node]
        return node

    def _vertex(self, node: Node) -> Vertex:
        return self._current(self.p.vertex(node)) if isinstance(node, Ref) else node

    def _locate(self, node: Vertex) -> tuple[list[Node], int]:
        for chain in self.chains:
            for k, n in enumerate(chain):
                if n is node:
                    return chain, k
        raise _FixUnavailable

    def replace(self, node: Vertex, new: Vertex) -> None:
        """Put `new` in place of `node`; caps left with nothing but a media type are dropped
        instead (next to a converter or parser they constrain nothing the link does not)."""
        if isinstance(new, Caps) and new.bare:
            self.remove(node)
            return
        node = self._current(node)
        chain, k = self._locate(node)
        chain[k] = new
        self.replaced[node] = new

    def remove(self, node: Vertex) -> None:
        node = self._current(node)
        if any(isinstance(n, Ref) and self._vertex(n) is node for c in self.chains for n in c):
            raise _FixUnavailable  # referenced by name elsewhere
        chain, k = self._locate(node)
        del chain[k]

    def insert_between(self, a: Vertex, b: Vertex, nodes: list[Vertex]) -> None:
        a, b = self._current(a), self._current(b)
        for chain in self.chains:
            for k in range(len(chain) - 1):
                if self._vertex(chain[k]) is a and self._vertex(chain[k + 1]) is b:
                    chain[k + 1 : k + 1] = nodes
                    return
        raise _FixUnavailable

    def render(self) -> str:
        out: list[list[Node]] = []
        for chain in self.chains:
            merged: list[Node] = []
            for n in chain:
                if isinstance(n, Caps) and merged and isinstance(merged[-1], Caps):
                    merged[-1] = _merge_caps(merged[-1], n)
                else:
                    merged.append(n)
            while merged and isinstance(merged[0], Caps):
                merged.pop(0)
            while merged and isinstance(merged[-1], Caps):
                merged.pop()
            if merged:
                out.append(merged)
        return _render(out)


def _merge_caps(a: Caps, b: Caps) -> Caps:
    """Two caps filters left next to each other by a fix: one filter with both constraints."""
    if len(a.structures) == 1 and len(b.structures) == 1 and a.media_type == b.media_type:
        sa, sb = a.structures[0], b.structures[0]
        merged = sa
        for name, raw in sb.fields:
            merged = merged.with_field(name, raw)
        return Caps((replace(merged, features=sb.features or sa.features),))
    return b
