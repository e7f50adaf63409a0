"""Merkle tree over item hashes, as in RFC 6962 (Certificate Transparency) section 2.1.

* leaf hash ``SHA-256(0x00 || data)``, interior node ``SHA-256(0x01 || left || right)``: the
  prefixes keep a leaf from ever being read as a node (second-preimage protection);
* **odd counts**: a tree of ``n`` leaves is split at the largest power of two ``k < n`` —
  equivalently, built bottom-up, the last node of a level with an odd count is *promoted* unchanged
  to the next level. Nothing is duplicated, so two different leaf lists never share a root (the
  "duplicate last leaf" rule has that flaw, CVE-2012-2459);
* the root of an empty tree is ``SHA-256(b"")``.

An inclusion proof carries the leaf index, the tree size and the audit path; it is checked with the
algorithm of RFC 9162 section 2.1.3.2, so the trees and proofs here interoperate with any RFC 6962
log verifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qubit_sim.stack.settle.canonical import sha256
from qubit_sim.stack.settle.errors import SettlementError

__all__ = [
    "MerkleProof",
    "MerkleTree",
    "leaf_hash",
    "node_hash",
    "root_from_proof",
    "verify_proof",
]

_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """Hash of a leaf holding ``data``: ``SHA-256(0x00 || data)``."""
    return sha256(_LEAF + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return sha256(_NODE + left + right)


@dataclass(frozen=True)
class MerkleProof:
    """Inclusion proof of one leaf.

    Attributes:
        index: 0-based position of the leaf.
        tree_size: Number of leaves in the tree.
        path: Sibling hashes from the leaf level up to the root.
    """

    index: int
    tree_size: int
    path: tuple[bytes, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON form ``{"index", "tree_size", "path": [hex, ...]}``."""
        return {
            "index": self.index,
            "tree_size": self.tree_size,
            "path": [node.hex() for node in self.path],
        }

    @classmethod
    def from_dict(cls, data: Any) -> MerkleProof:
        """Read the JSON form written by :meth:`to_dict`.

        Raises:
            SettlementError: if ``data`` is not exactly that form.
        """
        if not isinstance(data, dict) or set(data) != {"index", "tree_size", "path"}:
            raise SettlementError(f"inclusion proof {data!r} needs index, tree_size and path")
        index, size, path = data["index"], data["tree_size"], data["path"]
        if type(index) is not int or type(size) is not int or not isinstance(path, list):
            raise SettlementError(f"inclusion proof {data!r} has fields of the wrong type")
        nodes = []
        for node in path:
            if not isinstance(node, str) or len(node) != 64:
                raise SettlementError(f"inclusion proof node {node!r} is not 64 hex characters")
            try:
                raw = bytes.fromhex(node)
            except ValueError as exc:
                raise SettlementError(f"inclusion proof node {node!r} is not hex") from exc
            if raw.hex() != node:
                raise SettlementError(f"inclusion proof node {node!r} is not lowercase hex")
            nodes.append(raw)
        return cls(index, size, tuple(nodes))


class MerkleTree:
    """An RFC 6962 Merkle tree over ``leaves`` (each leaf's data, e.g. an item's SHA-256).

    All levels are kept, so building is O(n) hashes and each proof O(log n) lookups.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self._build([leaf_hash(bytes(data)) for data in leaves])

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Sequence[bytes]) -> MerkleTree:
        """The tree whose leaf hashes (already ``leaf_hash``-ed) are ``leaf_hashes``."""
        tree = cls.__new__(cls)
        tree._build(list(leaf_hashes))
        return tree

    def _build(self, level: list[bytes]) -> None:
        self._levels: list[list[bytes]] = [level]
        while len(level) > 1:
            parents = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                parents.append(level[-1])
            self._levels.append(parents)
            level = parents

    def __len__(self) -> int:
        return len(self._levels[0])

    @property
    def leaf_hashes(self) -> list[bytes]:
        """Leaf hashes in leaf order."""
        return list(self._levels[0])

    @property
    def root(self) -> bytes:
        """The Merkle tree hash (32 bytes)."""
        if not self._levels[0]:
            return sha256(b"")
        return self._levels[-1][0]

    def proof(self, index: int) -> MerkleProof:
        """Inclusion proof of leaf ``index``.

        Raises:
            SettlementError: if ``index`` is outside ``0 .. len(self) - 1``.
        """
        size = len(self)
        if not 0 <= index < size:
            raise SettlementError(f"leaf index {index} is outside a tree of {size} leaves")
        path = []
        position = index
        for level in self._levels[:-1]:
            sibling = position ^ 1
            # No sibling means this node was promoted unchanged: nothing to add at this level.
            if sibling < len(level):
                path.append(level[sibling])
            position //= 2
        return MerkleProof(index, size, tuple(path))


def root_from_proof(leaf: bytes, proof: MerkleProof) -> bytes | None:
    """The root that ``proof`` yields for leaf hash ``leaf``, or None if the proof is malformed.

    RFC 9162 section 2.1.3.2.
    """
    if not 0 <= proof.index < proof.tree_size:
        return None
    fn, sn = proof.index, proof.tree_size - 1
    result = leaf
    for node in proof.path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            result = node_hash(node, result)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, node)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return result


def verify_proof(leaf_hash: bytes, proof: MerkleProof, root: bytes) -> bool:
    """Whether ``leaf_hash`` is at ``proof.index`` of the tree of ``proof.tree_size`` leaves
    with root ``root``."""
    return root_from_proof(leaf_hash, proof) == root
