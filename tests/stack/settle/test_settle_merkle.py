"""RFC 6962 Merkle trees: published vectors, and proofs for every leaf of random trees."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.stack.settle import MerkleProof, MerkleTree, SettlementError, leaf_hash, verify_proof
from qubit_sim.stack.settle.merkle import node_hash, root_from_proof

# Reference vectors of RFC 6962 implementations (Certificate Transparency test data).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
              "606162636465666768696a6b6c6d6e6f"]
]  # fmt: skip
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PATHS = [
    (0, 1, []),
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH of RFC 6962 section 2.1, written recursively as in the RFC."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = 1 << (len(leaves) - 1).bit_length() - 1
    left, right = reference_root(leaves[:split]), reference_root(leaves[split:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def test_empty_tree_root_is_hash_of_nothing() -> None:
    assert MerkleTree([]).root == hashlib.sha256(b"").digest()


@pytest.mark.parametrize("size", range(1, 9))
def test_published_roots(size: int) -> None:
    assert MerkleTree(CT_LEAVES[:size]).root.hex() == CT_ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), CT_PATHS)
def test_published_audit_paths(index: int, size: int, path: list[str]) -> None:
    tree = MerkleTree(CT_LEAVES[:size])
    proof = tree.proof(index)
    assert [node.hex() for node in proof.path] == path
    assert (proof.index, proof.tree_size) == (index, size)
    assert verify_proof(leaf_hash(CT_LEAVES[index]), proof, bytes.fromhex(CT_ROOTS[size - 1]))


# Draw the size first so that sizes spread evenly over 1..200 instead of clustering small.
leaf_lists = st.integers(1, 200).flatmap(
    lambda n: st.lists(st.binary(min_size=32, max_size=32), min_size=n, max_size=n)
)


def test_every_size_up_to_200_matches_the_reference_and_proves_every_leaf() -> None:
    leaves = [hashlib.sha256(bytes([i % 256, i // 256])).digest() for i in range(200)]
    for size in range(1, 201):
        tree = MerkleTree(leaves[:size])
        assert tree.root == reference_root(leaves[:size])
        for index in range(size):
            assert verify_proof(tree.leaf_hashes[index], tree.proof(index), tree.root)


@settings(max_examples=60, deadline=None)
@given(leaves=leaf_lists, wrong=st.binary(min_size=32, max_size=32))
def test_every_leaf_proof_verifies_and_a_wrong_leaf_fails(
    leaves: list[bytes], wrong: bytes
) -> None:
    tree = MerkleTree(leaves)
    assert tree.root == reference_root(leaves)
    for index, data in enumerate(leaves):
        proof = tree.proof(index)
        assert verify_proof(leaf_hash(data), proof, tree.root)
        if wrong != data:
            assert not verify_proof(leaf_hash(wrong), proof, tree.root)
        # The bare item hash is not a leaf: without the 0x00 prefix the proof must fail.
        assert not verify_proof(data, proof, tree.root)


@settings(max_examples=60, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_a_proof_is_bound_to_its_position_path_and_size(leaves: list[bytes], data) -> None:
    tree = MerkleTree(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = tree.proof(index)
    leaf = leaf_hash(leaves[index])
    for other in (index - 1, index + 1):
        if 0 <= other < len(leaves) and leaves[other] != leaves[index]:
            moved = MerkleProof(other, proof.tree_size, proof.path)
            assert not verify_proof(leaf, moved, tree.root)
    if proof.path:
        position = data.draw(st.integers(0, len(proof.path) - 1))
        bent = bytearray(proof.path[position])
        bent[0] ^= 0x01
        path = proof.path[:position] + (bytes(bent),) + proof.path[position + 1 :]
        assert not verify_proof(leaf, MerkleProof(index, proof.tree_size, path), tree.root)
        shorter = MerkleProof(index, proof.tree_size, proof.path[:-1])
        assert not verify_proof(leaf, shorter, tree.root)
    longer = MerkleProof(index, proof.tree_size, (*proof.path, tree.root))
    assert not verify_proof(leaf, longer, tree.root)
    # A path alone does not always pin the tree size (leaf 0 of 3 and of 4 leaves hash alike),
    # which is why the ledger commits item_count and verification compares it to tree_size.
    outside = MerkleProof(index, index, proof.path)
    assert not verify_proof(leaf, outside, tree.root)


def test_no_duplicate_last_leaf_ambiguity() -> None:
    # With "duplicate the odd leaf" trees, [a, b, c] and [a, b, c, c] share a root.
    leaves = [bytes([i]) * 32 for i in range(3)]
    assert MerkleTree(leaves).root != MerkleTree([*leaves, leaves[-1]]).root


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    left, right = b"\x11" * 32, b"\x22" * 32
    assert leaf_hash(left + right) != node_hash(left, right)


def test_from_leaf_hashes_rebuilds_the_same_tree() -> None:
    leaves = [bytes([i]) * 32 for i in range(13)]
    tree = MerkleTree(leaves)
    assert MerkleTree.from_leaf_hashes(tree.leaf_hashes).root == tree.root


def test_proof_json_round_trip_and_strictness() -> None:
    proof = MerkleTree(CT_LEAVES).proof(5)
    assert MerkleProof.from_dict(proof.to_dict()) == proof
    bad_node = proof.to_dict()
    bad_node["path"][0] = bad_node["path"][0].upper()
    for bad in [bad_node, {"index": 1}, {**proof.to_dict(), "index": True}]:
        with pytest.raises(SettlementError):
            MerkleProof.from_dict(bad)


def test_out_of_range_index() -> None:
    tree = MerkleTree(CT_LEAVES[:3])
    with pytest.raises(SettlementError, match="outside a tree of 3"):
        tree.proof(3)
    assert root_from_proof(tree.leaf_hashes[0], MerkleProof(3, 3, ())) is None
