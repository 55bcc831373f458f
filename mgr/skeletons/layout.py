"""The :class:`SkeletonLayout` type: joints, limbs, flip pairs and centre of a keypoint axis.

The conventions every layout follows are in :mod:`mgr.skeletons`.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["SkeletonLayout"]


Edge = tuple[int, int]


def _canonical_edges(edges: Iterable[Sequence[int]]) -> tuple[Edge, ...]:
    """Return edges as sorted ``(min, max)`` pairs (duplicates are kept for validation)."""
    out = []
    for edge in edges:
        i, j = (operator.index(v) for v in edge)
        out.append((min(i, j), max(i, j)))
    return tuple(sorted(out))


@dataclass(frozen=True)
class SkeletonLayout:
    """A keypoint layout: joint names, limb graph, mirror pairs and centre joint.

    Attributes:
        name: registry name of the layout, e.g. ``"openpose_body_25"``.
        joints: joint names; the position in the tuple is the index on the ``V``
            axis of a keypoint array.
        limbs: undirected edges ``(i, j)``; stored canonically with ``i < j`` and
            sorted, whatever orientation they were given in.
        flip_pairs: ``(left, right)`` index pairs of the person's left and right
            side; joints not in a pair lie on the body's midline.
        center: index of the joint used for centre normalisation.
        parent: name of the layout this one was cut from, if any.
        parent_indices: for each joint, its index in the parent layout.
    """

    name: str
    joints: tuple[str, ...]
    limbs: tuple[Edge, ...]
    flip_pairs: tuple[Edge, ...]
    center: int
    parent: str | None = None
    parent_indices: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        # Accept lists from callers but store hashable, canonical tuples.
        object.__setattr__(self, "joints", tuple(str(j) for j in self.joints))
        object.__setattr__(self, "limbs", _canonical_edges(self.limbs))
        object.__setattr__(
            self,
            "flip_pairs",
            tuple((operator.index(a), operator.index(b)) for a, b in self.flip_pairs),
        )
        object.__setattr__(self, "center", operator.index(self.center))
        if self.parent_indices is not None:
            object.__setattr__(
                self, "parent_indices", tuple(operator.index(i) for i in self.parent_indices)
            )
        self._validate()

    def _validate(self) -> None:
        where = f"layout {self.name!r}"
        if not self.name:
            raise ValueError("a layout needs a non-empty name")
        num = len(self.joints)
        if num == 0:
            raise ValueError(f"{where} has no joints")
        if len(set(self.joints)) != num:
            dups = sorted({j for j in self.joints if self.joints.count(j) > 1})
            raise ValueError(f"{where} has duplicate joint names {dups}")
        for i, j in self.limbs:
            if i == j:
                raise ValueError(f"{where}: limb ({i}, {j}) is a self loop")
            if i < 0 or j >= num:
                raise ValueError(f"{where}: limb ({i}, {j}) out of range for {num} joints")
        if len(set(self.limbs)) != len(self.limbs):
            raise ValueError(f"{where} lists a limb twice")
        seen: set[int] = set()
        for left, right in self.flip_pairs:
            if left == right:
                raise ValueError(f"{where}: flip pair ({left}, {right}) maps a joint to itself")
            for k in (left, right):
                if not 0 <= k < num:
                    raise ValueError(
                        f"{where}: flip pair ({left}, {right}) out of range for {num} joints"
                    )
                if k in seen:
                    raise ValueError(f"{where}: joint {k} appears in more than one flip pair")
                seen.add(k)
        if not 0 <= self.center < num:
            raise ValueError(f"{where}: center {self.center} out of range for {num} joints")
        if (self.parent is None) != (self.parent_indices is None):
            raise ValueError(f"{where}: parent and parent_indices must be given together")
        if self.parent_indices is not None and len(self.parent_indices) != num:
            raise ValueError(f"{where}: {len(self.parent_indices)} parent_indices for {num} joints")

    @property
    def num_joints(self) -> int:
        """Number of joints ``V``."""
        return len(self.joints)

    def index(self, joint: str) -> int:
        """Return the index of a joint name.

        Args:
            joint: a name from :attr:`joints`.

        Returns:
            Its position on the ``V`` axis.

        Raises:
            KeyError: if the layout has no such joint; the message lists the names.
        """
        try:
            return self.joints.index(joint)
        except ValueError:
            raise KeyError(
                f"layout {self.name!r} has no joint {joint!r}; valid names: {list(self.joints)}"
            ) from None

    def flip_permutation(self) -> tuple[int, ...]:
        """Return the permutation that mirrors the person left/right.

        ``keypoint[..., p, :]`` swaps every left joint with its right partner and
        keeps midline joints in place (the coordinates themselves still need
        flipping by the caller).

        Returns:
            ``p`` with ``p[left] = right``, ``p[right] = left``, ``p[i] = i`` otherwise.
        """
        perm = list(range(self.num_joints))
        for left, right in self.flip_pairs:
            perm[left], perm[right] = right, left
        return tuple(perm)

    def adjacency(self) -> np.ndarray:
        """Return the symmetric 0/1 adjacency matrix of the limb graph.

        Returns:
            ``(V, V)`` float32 array, no self loops.
        """
        adj = np.zeros((self.num_joints, self.num_joints), dtype=np.float32)
        for i, j in self.limbs:
            adj[i, j] = adj[j, i] = 1.0
        return adj

    def _neighbours(self) -> list[list[int]]:
        nbrs: list[list[int]] = [[] for _ in range(self.num_joints)]
        for i, j in self.limbs:
            nbrs[i].append(j)
            nbrs[j].append(i)
        return nbrs

    def oriented_limbs(self) -> tuple[Edge, ...]:
        """Return the limbs as ``(parent, child)`` bones pointing away from the centre.

        The parent is the end with the smaller hop distance to :attr:`center`;
        ties (edges closing a cycle at equal depth) keep ``(min, max)``. On a tree
        every joint but the centre is the child of exactly one bone, which is
        what bone (joint-difference) features need.

        Returns:
            One ``(parent, child)`` pair per limb, in :attr:`limbs` order.
        """
        nbrs = self._neighbours()
        inf = self.num_joints + 1
        depth = [inf] * self.num_joints
        depth[self.center] = 0
        queue = [self.center]
        for u in queue:  # breadth-first: the list grows while we walk it
            for v in nbrs[u]:
                if depth[v] == inf:
                    depth[v] = depth[u] + 1
                    queue.append(v)
        return tuple((j, i) if depth[j] < depth[i] else (i, j) for i, j in self.limbs)

    def subset(
        self, indices: Sequence[int], name: str, center: int | None = None
    ) -> SkeletonLayout:
        """Keep some joints, deriving the subset's limbs and flip pairs.

        Two kept joints are linked iff the parent graph has a path between them
        whose inner joints were all dropped (graph contraction), so chains through
        dropped joints collapse into one limb. Flip pairs are the parent's pairs
        whose two ends are both kept.

        Args:
            indices: parent joint indices to keep, in the order of the new ``V`` axis.
            name: name of the new layout.
            center: parent index of the centre joint; required when the parent's
                centre is dropped, otherwise it defaults to the parent's centre.

        Returns:
            The subset layout, with :attr:`parent` set to this layout's name.

        Raises:
            ValueError: on out-of-range or duplicate indices, or a missing centre.
        """
        idx = [operator.index(i) for i in indices]
        if not idx:
            raise ValueError(f"subset {name!r} of {self.name!r} keeps no joints")
        bad = [i for i in idx if not 0 <= i < self.num_joints]
        if bad:
            raise ValueError(
                f"subset {name!r}: indices {bad} out of range for {self.name!r} "
                f"({self.num_joints} joints)"
            )
        if len(set(idx)) != len(idx):
            dups = sorted({i for i in idx if idx.count(i) > 1})
            raise ValueError(f"subset {name!r}: duplicate indices {dups}")
        new_of = {old: new for new, old in enumerate(idx)}

        if center is None:
            if self.center not in new_of:
                raise ValueError(
                    f"subset {name!r} drops the centre joint {self.center} "
                    f"({self.joints[self.center]!r}) of {self.name!r}; pass center="
                )
            center = self.center
        center = operator.index(center)
        if center not in new_of:
            raise ValueError(f"subset {name!r}: center {center} is not among the kept indices")

        # Contraction: from each kept joint, walk through dropped joints only.
        nbrs = self._neighbours()
        limbs: set[Edge] = set()
        for start in idx:
            seen = {start}
            stack = [start]
            while stack:
                u = stack.pop()
                for v in nbrs[u]:
                    if v in seen:
                        continue
                    seen.add(v)
                    if v in new_of:
                        a, b = new_of[start], new_of[v]
                        limbs.add((min(a, b), max(a, b)))
                    else:
                        stack.append(v)

        flips = tuple(
            (new_of[left], new_of[right])
            for left, right in self.flip_pairs
            if left in new_of and right in new_of
        )
        return SkeletonLayout(
            name=name,
            joints=tuple(self.joints[i] for i in idx),
            limbs=tuple(limbs),
            flip_pairs=flips,
            center=new_of[center],
            parent=self.name,
            parent_indices=tuple(idx),
        )
