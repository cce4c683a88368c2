// The RFC 6962 / RFC 9162 Merkle log in the browser: leaf and node hashes with WebCrypto
// SHA-256, and the verification algorithms of RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2
// (consistency), written as the RFC's fn/sn loops over BigInt (tree sizes may exceed the
// 32 bits JavaScript's bit operators work on). Verifiers return nothing or throw a
// VerificationError carrying the expected and the computed value.

import { bytesToHex, concatBytes, equalBytes } from "./codec.js";
import { canonicalize } from "./jcs.js";

export const LEAF_PREFIX = Uint8Array.of(0x00);
export const NODE_PREFIX = Uint8Array.of(0x01);
const HASH_SIZE = 32;

export class VerificationError extends Error {
  constructor(message, { expected, computed } = {}) {
    super(message);
    this.name = "VerificationError";
    this.expected = expected instanceof Uint8Array ? bytesToHex(expected) : expected;
    this.computed = computed instanceof Uint8Array ? bytesToHex(computed) : computed;
  }
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** SHA-256(0x00 || JCS(event)): the leaf of a sealed event, signature included. */
export async function leafHash(event) {
  return sha256(concatBytes(LEAF_PREFIX, canonicalize(event)));
}

export async function nodeHash(left, right) {
  return sha256(concatBytes(NODE_PREFIX, left, right));
}

function requireHashes(named) {
  for (const [name, value] of Object.entries(named)) {
    if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) {
      throw new VerificationError(`${name} is not a 32-byte hash`, {
        expected: HASH_SIZE,
        computed: value?.length,
      });
    }
  }
}

function requirePath(proof) {
  proof.forEach((step, position) => requireHashes({ [`proof[${position}]`]: step }));
}

const odd = (n) => (n & 1n) === 1n;

/** RFC 9162 §2.1.3.2: `leaf` is leaf `index` of the tree of `size` leaves with `root`. */
export async function verifyInclusion(leaf, index, size, proof, root) {
  requireHashes({ leaf_hash: leaf, root });
  requirePath(proof);
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (fn < 0n || fn > sn) {
    throw new VerificationError("the leaf index is outside the tree", {
      expected: `0 <= index < ${size}`,
      computed: index,
    });
  }
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) {
      throw new VerificationError("the audit path is longer than the tree is high", {
        computed: proof.length,
      });
    }
    if (odd(fn) || fn === sn) {
      r = await nodeHash(p, r);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) {
    throw new VerificationError("the audit path is shorter than the tree is high", {
      computed: proof.length,
    });
  }
  if (!equalBytes(r, root)) {
    throw new VerificationError("the audit path does not lead to the signed log root", {
      expected: root,
      computed: r,
    });
  }
}

export const EMPTY_ROOT_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** RFC 9162 §2.1.4.2: the tree of `first` leaves is a prefix of the tree of `second`.
 * Sizes 0 and equal sizes are consistent with the empty proof (docs/merkle.md). */
export async function verifyConsistency(first, second, firstRoot, secondRoot, proof) {
  requireHashes({ first_root: firstRoot, second_root: secondRoot });
  requirePath(proof);
  const m = BigInt(first);
  const n = BigInt(second);
  if (m < 0n || m > n) {
    throw new VerificationError("the first size must be between 0 and the second", {
      expected: `0 <= first <= ${second}`,
      computed: first,
    });
  }
  if (m === 0n || m === n) {
    if (proof.length !== 0) {
      throw new VerificationError("a trivial consistency proof must be empty", {
        expected: 0,
        computed: proof.length,
      });
    }
    if (m === 0n && bytesToHex(firstRoot) !== EMPTY_ROOT_HEX) {
      throw new VerificationError("the empty tree's root is SHA-256 of nothing", {
        expected: EMPTY_ROOT_HEX,
        computed: firstRoot,
      });
    }
    if (m === n && !equalBytes(firstRoot, secondRoot)) {
      throw new VerificationError("two trees of one size must have one root", {
        expected: firstRoot,
        computed: secondRoot,
      });
    }
    return;
  }
  if (proof.length === 0) {
    throw new VerificationError("the consistency proof is empty", { expected: "> 0", computed: 0 });
  }
  // Step 2: when the first size is a power of two the proof omits the first root.
  const path = (m & (m - 1n)) === 0n ? [firstRoot, ...proof] : proof;
  let fn = m - 1n;
  let sn = n - 1n;
  while (odd(fn)) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) {
      throw new VerificationError("the consistency proof has too many hashes", {
        computed: proof.length,
      });
    }
    if (odd(fn) || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if (!odd(fn)) {
        while (!odd(fn) && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) {
    throw new VerificationError("the consistency proof has too few hashes", {
      computed: proof.length,
    });
  }
  if (!equalBytes(fr, firstRoot)) {
    throw new VerificationError("the proof does not lead to the first log root", {
      expected: firstRoot,
      computed: fr,
    });
  }
  if (!equalBytes(sr, secondRoot)) {
    throw new VerificationError("the proof does not lead to the second log root", {
      expected: secondRoot,
      computed: sr,
    });
  }
}
