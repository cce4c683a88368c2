// What the explorer checks, trusting only the genesis the user pinned: genesis, block hashes
// and sealer signatures, validator attestations and finality, event signatures, inclusion
// and consistency proofs. Each check is recorded in a Report as passed or failed with its
// reason (and expected vs computed where there is one); nothing the server says is believed
// unless a check derived it from the pinned genesis.

import { base64urlDecode, bytesToHex, equalBytes, hexToBytes, publicKeyFromDid } from "./codec.js";
import { canonicalize, canonicalText } from "./jcs.js";
import { VerificationError, leafHash, sha256, verifyConsistency, verifyInclusion } from "./merkle.js";

export const GENESIS_EVENT_TYPE = "org.careledger.ledger.genesis.v1";
const ZERO_HASH = "0".repeat(64);

/** Verify an Ed25519 signature by the key a did:key names (WebCrypto). */
export async function verifyEd25519(did, signature, message, what) {
  let key;
  let raw;
  try {
    key = await crypto.subtle.importKey("raw", publicKeyFromDid(did), { name: "Ed25519" }, false, [
      "verify",
    ]);
    raw = base64urlDecode(signature);
  } catch (error) {
    throw new VerificationError(`${what}: ${error.message}`);
  }
  if (raw.length !== 64) {
    throw new VerificationError(`${what}: not a 64-byte Ed25519 signature`, {
      expected: 64,
      computed: raw.length,
    });
  }
  if (!(await crypto.subtle.verify({ name: "Ed25519" }, key, raw, message))) {
    throw new VerificationError(`${what} does not verify with the key of ${did}`);
  }
}

function withoutSignature(object) {
  const { signature: _dropped, ...rest } = object;
  return rest;
}

function requireEqual(what, expected, computed) {
  if (canonicalText(expected) !== canonicalText(computed)) {
    throw new VerificationError(what, { expected, computed });
  }
}

/** A signed event: Ed25519 by `signer` over JCS(event without `signature`). */
export async function verifyEventSignature(event) {
  if (typeof event?.signer !== "string" || typeof event?.signature !== "string") {
    throw new VerificationError("the event has no signer or signature");
  }
  await verifyEd25519(
    event.signer,
    event.signature,
    canonicalize(withoutSignature(event)),
    "the event signature",
  );
}

/** The pinned genesis event: its admin's signature and a coherent configuration. */
export async function verifyGenesis(event) {
  if (event?.type !== GENESIS_EVENT_TYPE) {
    throw new VerificationError("not a genesis event", {
      expected: GENESIS_EVENT_TYPE,
      computed: event?.type,
    });
  }
  const config = event.data;
  const validators = config?.validators;
  if (!Array.isArray(validators) || validators.length === 0 || !Number.isInteger(config.quorum)) {
    throw new VerificationError("the genesis names no validators or no quorum");
  }
  if (new Set(validators).size !== validators.length) {
    throw new VerificationError("a validator is named twice in genesis");
  }
  if (!(config.quorum <= validators.length && 2 * config.quorum > validators.length)) {
    throw new VerificationError("the quorum is not a majority of the validators", {
      expected: `${Math.floor(validators.length / 2) + 1}..${validators.length}`,
      computed: config.quorum,
    });
  }
  for (const [member, expected] of [
    ["source", `careledger:genesis:${config.chain_id}`],
    ["subject", config.chain_id],
    ["time", config.created_at],
    ["signer", config.admin],
  ]) {
    requireEqual(`the genesis member "${member}" does not match its configuration`, expected, event[member]);
  }
  for (const did of [config.sealer, config.admin, ...validators]) publicKeyFromDid(did);
  await verifyEd25519(config.admin, event.signature, canonicalize(withoutSignature(event)), "the admin's genesis signature");
  return { ...config, fingerprint: bytesToHex(await leafHash(event)) };
}

/** block_hash = SHA-256(JCS(header)). */
export async function verifyBlockHash(block) {
  const computed = bytesToHex(await sha256(canonicalize(block.header)));
  if (computed !== block.block_hash) {
    throw new VerificationError("block_hash is not SHA-256 of the header's JCS", {
      expected: block.block_hash,
      computed,
    });
  }
}

/** The block is of the pinned chain and signed by the sealer genesis names. */
export async function verifySealerSignature(block, genesis) {
  requireEqual("the block is of another chain", genesis.chain_id, block.header.chain_id);
  requireEqual("the block names another sealer than genesis", genesis.sealer, block.header.sealer);
  requireEqual("unknown block version", 1, block.header.version);
  await verifyEd25519(
    genesis.sealer,
    block.signature,
    hexToBytes(block.block_hash, 32),
    "the sealer's signature over block_hash",
  );
}

/** One attestation: by a genesis validator, for exactly this header, signed. */
export async function verifyAttestation(attestation, header, blockHash, genesis) {
  if (!genesis.validators.includes(attestation.validator)) {
    throw new VerificationError("the attester is not a validator named in genesis", {
      computed: attestation.validator,
    });
  }
  const fields = { chain_id: header.chain_id, height: header.height, block_hash: blockHash, tree_size: header.tree_size, log_root: header.log_root };
  for (const [field, expected] of Object.entries(fields)) {
    requireEqual(`the attestation's ${field} is not the block's`, expected, attestation[field]);
  }
  await verifyEd25519(attestation.validator, attestation.signature, canonicalize(withoutSignature(attestation)), "the attestation signature");
}

/** The distinct genesis validators whose attestations verify; throws below the quorum. */
export async function verifyFinality(block, attestations, genesis) {
  const attesters = new Set();
  const refused = [];
  for (const attestation of attestations ?? []) {
    try {
      await verifyAttestation(attestation, block.header, block.block_hash, genesis);
      attesters.add(attestation.validator);
    } catch (error) {
      refused.push(`${attestation.validator ?? "?"}: ${error.message}`);
    }
  }
  if (attesters.size < genesis.quorum) {
    throw new VerificationError(
      `too few validators attested this block${refused.length ? ` (refused: ${refused.join("; ")})` : ""}`,
      { expected: `>= ${genesis.quorum}`, computed: attesters.size },
    );
  }
  return { attesters: [...attesters], refused };
}

/** Block 0 holds exactly the pinned genesis event, committed and sealed as docs/chain.md says. */
export async function verifyGenesisBlock(block, genesisEvent, genesis) {
  const h = block.header;
  requireEqual("the genesis block is not at height 0", 0, h.height);
  requireEqual("the genesis block's prev_hash is not zero", ZERO_HASH, h.prev_hash);
  requireEqual("the genesis block must hold one event", 1, block.events?.length);
  requireEqual("the genesis block holds another genesis than the one pinned", canonicalText(genesisEvent), canonicalText(block.events[0]));
  const leaf = bytesToHex(await leafHash(genesisEvent));
  requireEqual("the genesis block's log_root is not its event's leaf", leaf, h.log_root);
  requireEqual("the genesis block's tree_size is not 1", 1, h.tree_size);
  await verifyBlockHash(block);
  await verifySealerSignature(block, genesis);
}

export { verifyInclusion, verifyConsistency, leafHash, VerificationError, equalBytes };

/** A list of named checks, each passed, failed (with its reason) or not run. */
export class Report {
  constructor() {
    this.checks = [];
  }

  /** Run `body`; a check whose `needs` failed is not run, since its input is not trusted. */
  async run(id, label, body, needs = []) {
    const missing = needs.filter((need) => this.status(need) !== "passed");
    const check = { id, label, status: "not run", detail: "", expected: undefined, computed: undefined };
    this.checks.push(check);
    if (missing.length) {
      check.detail = `not run: depends on ${missing.map((m) => this.label(m)).join(", ")}`;
      return undefined;
    }
    try {
      const result = await body();
      check.status = "passed";
      check.detail = typeof result === "string" ? result : result?.detail ?? "";
      return result;
    } catch (error) {
      check.status = "failed";
      check.detail = error.message ?? String(error);
      check.expected = error.expected;
      check.computed = error.computed;
      return undefined;
    }
  }

  status(id) {
    return this.checks.find((c) => c.id === id)?.status;
  }

  label(id) {
    return this.checks.find((c) => c.id === id)?.label ?? id;
  }

  get verified() {
    return this.checks.length > 0 && this.checks.every((c) => c.status === "passed");
  }
}

/** The whole receipt of one event (source, id): the checks of docs/explorer.md, in order. */
export async function checkEvent(api, pinnedEvent, source, id) {
  const report = new Report();
  const genesis = await report.run("genesis", "Pinned genesis is signed by its admin", async () => {
    const config = await verifyGenesis(pinnedEvent);
    return { ...config, detail: `chain ${config.chain_id}, fingerprint ${config.fingerprint.slice(0, 16)}…` };
  });
  await report.run("genesis-block", "Block 0 holds the pinned genesis, sealed by its sealer", async () => {
    await verifyGenesisBlock(await api.block(0), pinnedEvent, genesis);
    return "block 0 matches";
  }, ["genesis"]);
  const block = await report.run("final-block", "Final block's hash is SHA-256 of its header", async () => {
    const head = await api.head();
    if (!Number.isInteger(head.final_height)) throw new VerificationError("no block is final yet");
    const found = await api.block(head.final_height);
    await verifyBlockHash(found);
    return { ...found, detail: `height ${found.header.height}, tree size ${found.header.tree_size}` };
  });
  await report.run("sealer", "Sealer named in genesis signed the final block", async () => {
    await verifySealerSignature(block, genesis);
    return `signed by ${genesis.sealer.slice(0, 24)}…`;
  }, ["genesis", "final-block"]);
  await report.run("quorum", "A quorum of genesis validators attested the final block", async () => {
    const { attesters } = await verifyFinality(block, block.attestations, genesis);
    return `${attesters.length} of ${genesis.validators.length} validators (quorum ${genesis.quorum})`;
  }, ["genesis", "final-block"]);
  const proof = await report.run("proof-size", "Proof is against the final block's tree size and root", async () => {
    const answer = await api.inclusion(source, id, block.header.tree_size);
    requireEqual("the proof's tree_size is not the final block's", block.header.tree_size, answer.tree_size);
    requireEqual("the proof's log_root is not the final block's", block.header.log_root, answer.log_root);
    return { ...answer, detail: `leaf ${answer.leaf_index} of ${answer.tree_size}, sealed at height ${answer.height}` };
  }, ["final-block"]);
  await report.run("event-id", "Proof is for the event asked for", async () => {
    requireEqual("the proof carries another event", [source, id], [proof.event?.source, proof.event?.id]);
    return `${proof.event.type}`;
  }, ["proof-size"]);
  await report.run("event-signature", "Event is signed by its signer (Ed25519)", async () => {
    await verifyEventSignature(proof.event);
    return `signer ${proof.event.signer.slice(0, 24)}…`;
  }, ["proof-size"]);
  const leaf = await report.run("leaf-hash", "Leaf hash is SHA-256(0x00 ‖ JCS(event))", async () => {
    const computed = await leafHash(proof.event);
    requireEqual("the proof's leaf_hash is not the event's", bytesToHex(computed), proof.leaf_hash);
    return { bytes: computed, detail: bytesToHex(computed) };
  }, ["proof-size"]);
  await report.run("inclusion", "Audit path leads to the final block's log root (RFC 9162)", async () => {
    const path = proof.audit_path.map((step) => hexToBytes(step, 32));
    await verifyInclusion(leaf.bytes, proof.leaf_index, block.header.tree_size, path, hexToBytes(block.header.log_root, 32));
    return `${path.length} hashes recomputed`;
  }, ["final-block", "leaf-hash"]);
  return report;
}

/** Two blocks of the pinned chain, each sealed; the earlier log is a prefix of the later. */
export async function checkConsistency(api, pinnedEvent, firstHeight, secondHeight) {
  const report = new Report();
  const genesis = await report.run("genesis", "Pinned genesis is signed by its admin", async () => verifyGenesis(pinnedEvent));
  const blocks = {};
  for (const [name, height] of [["first", firstHeight], ["second", secondHeight]]) {
    blocks[name] = await report.run(`${name}-block`, `Block ${height}: hash and sealer signature`, async () => {
      const found = await api.block(height);
      await verifyBlockHash(found);
      await verifySealerSignature(found, genesis);
      return { ...found, detail: `tree size ${found.header.tree_size}, root ${found.header.log_root.slice(0, 16)}…` };
    }, ["genesis"]);
  }
  await report.run("consistency", "The first log is a prefix of the second (RFC 9162)", async () => {
    const first = blocks.first.header;
    const second = blocks.second.header;
    if (first.tree_size > second.tree_size) throw new VerificationError("the first block is the later one");
    const answer = first.tree_size === second.tree_size ? { proof: [] } : await api.consistency(first.tree_size, second.tree_size);
    const path = answer.proof.map((step) => hexToBytes(step, 32));
    await verifyConsistency(first.tree_size, second.tree_size, hexToBytes(first.log_root, 32), hexToBytes(second.log_root, 32), path);
    return `${first.tree_size} → ${second.tree_size}, ${path.length} hashes`;
  }, ["first-block", "second-block"]);
  return report;
}
