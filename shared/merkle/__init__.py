"""The RFC 6962 / RFC 9162 §2.1 Merkle log: one tree over every sealed event of the chain.

Pure: no I/O, clock, randomness or environment. See docs/merkle.md.
"""

from shared.merkle.compact import CompactRange, StoredNode
from shared.merkle.errors import (
    ConsistencyProofError,
    InclusionProofError,
    MerkleArgumentError,
    MerkleError,
    SubtreeStoreError,
)
from shared.merkle.hashing import (
    EMPTY_ROOT,
    HASH_SIZE,
    LEAF_PREFIX,
    NODE_PREFIX,
    leaf_hash,
    node_hash,
)
from shared.merkle.memory_store import MemorySubtreeStore
from shared.merkle.nodes import (
    Address,
    consistency_proof_nodes,
    inclusion_proof_nodes,
    root_nodes,
    subtree_cover,
)
from shared.merkle.store_proofs import (
    SubtreeReader,
    consistency_proof_at,
    inclusion_proof_at,
    root_at,
)
from shared.merkle.tree import consistency_proof, inclusion_proof, root
from shared.merkle.verify import verify_consistency, verify_inclusion

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "Address",
    "CompactRange",
    "ConsistencyProofError",
    "InclusionProofError",
    "MemorySubtreeStore",
    "MerkleArgumentError",
    "MerkleError",
    "StoredNode",
    "SubtreeReader",
    "SubtreeStoreError",
    "consistency_proof",
    "consistency_proof_at",
    "consistency_proof_nodes",
    "inclusion_proof",
    "inclusion_proof_at",
    "inclusion_proof_nodes",
    "leaf_hash",
    "node_hash",
    "root",
    "root_at",
    "root_nodes",
    "subtree_cover",
    "verify_consistency",
    "verify_inclusion",
]
