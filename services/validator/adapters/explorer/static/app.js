// The explorer page: it fetches from the validator that served it and verifies in the browser
// (verify.js) against the genesis the user pinned. It renders server data as text only
// (textContent, never innerHTML) and never shows an event's `data`.

import { bytesToHex } from "./codec.js";
import { checkConsistency, checkEvent, verifyBlockHash, verifyGenesis, verifySealerSignature } from "./verify.js";

const STORAGE_KEY = "careledger.explorer.genesis";
const POLL_MS = 3000;
const PAGE = 20;

const $ = (id) => document.getElementById(id);

/** The validator's JSON API, same origin; an answer other than 2xx is an Error. */
async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (!response.ok) {
    let detail = "";
    try {
      const body = await response.json();
      detail = typeof body?.detail === "string" ? `: ${body.detail}` : body?.error ? `: ${body.error}` : "";
    } catch {
      // not JSON: the status says enough
    }
    throw new Error(`GET ${path} answered ${response.status}${detail}`);
  }
  return response.json();
}

export const api = {
  head: () => getJson("/v1/head"),
  block: (height) => getJson(`/v1/blocks/${encodeURIComponent(height)}`),
  blocks: (from, limit) => getJson(`/v1/blocks?from=${from}&limit=${limit}`),
  genesis: () => getJson("/v1/genesis"),
  evidence: (limit) => getJson(`/v1/evidence?limit=${limit}`),
  inclusion: (source, id, treeSize) =>
    getJson(
      `/v1/proofs/inclusion?source=${encodeURIComponent(source)}&id=${encodeURIComponent(id)}&tree_size=${treeSize}`,
    ),
  consistency: (first, second) => getJson(`/v1/proofs/consistency?first=${first}&second=${second}`),
};

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function short(text, length = 16) {
  const value = String(text ?? "");
  return value.length > length ? `${value.slice(0, length)}…` : value;
}

function fillFields(dl, pairs) {
  dl.replaceChildren();
  for (const [name, value, full] of pairs) {
    dl.append(element("dt", name));
    const dd = element("dd", value);
    if (full) dd.title = full;
    dl.append(dd);
  }
}

function ago(iso) {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "unknown";
  const seconds = Math.max(0, Math.round((Date.now() - then) / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

// --- genesis pin -----------------------------------------------------------------------------

let pinned = null; // { event, config } once verified

async function pin(event, how) {
  const config = await verifyGenesis(event);
  pinned = { event, config };
  localStorage.setItem(STORAGE_KEY, JSON.stringify(event));
  $("genesis-status").textContent =
    `Pinned (${how}): chain ${config.chain_id}, ${config.validators.length} validators, quorum ${config.quorum}. ` +
    `Fingerprint ${config.fingerprint} — compare it with the one your operator published.`;
  $("genesis-status").className = "ok";
}

function unpinned(message, failed = false) {
  pinned = null;
  $("genesis-status").textContent = message;
  $("genesis-status").className = failed ? "bad" : "";
}

async function restorePin() {
  const stored = localStorage.getItem(STORAGE_KEY);
  if (!stored) return unpinned("No genesis pinned: paste genesis.json to verify anything.");
  try {
    await pin(JSON.parse(stored), "kept in this browser");
  } catch (error) {
    localStorage.removeItem(STORAGE_KEY);
    unpinned(`The stored genesis was refused and forgotten: ${error.message}`, true);
  }
}

function wireGenesis() {
  $("genesis-form").addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    try {
      await pin(JSON.parse($("genesis-input").value), "pasted");
      $("genesis-input").value = "";
      refreshBlocks();
    } catch (error) {
      unpinned(`Genesis refused: ${error.message}`, true);
    }
  });
  $("trust-server").addEventListener("click", async () => {
    try {
      await pin(await api.genesis(), "this validator's /v1/genesis, trusted once");
      refreshBlocks();
    } catch (error) {
      unpinned(`Genesis refused: ${error.message}`, true);
    }
  });
  $("forget-genesis").addEventListener("click", () => {
    localStorage.removeItem(STORAGE_KEY);
    unpinned("Genesis forgotten: nothing can be verified until one is pinned.");
  });
}

// --- reports ---------------------------------------------------------------------------------

const STATUS_TEXT = { passed: "passed", failed: "FAILED", "not run": "not run" };

function shown(value) {
  if (value instanceof Uint8Array) return bytesToHex(value);
  if (value === undefined) return "—";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function renderReport(list, verdict, report) {
  list.replaceChildren();
  for (const check of report.checks) {
    const item = element("li", undefined, `check ${check.status.replace(" ", "-")}`);
    item.dataset.check = check.id;
    item.dataset.status = check.status;
    item.append(element("strong", STATUS_TEXT[check.status], "status"), " ", element("span", check.label, "label"));
    if (check.detail) item.append(element("span", check.detail, "detail"));
    if (check.expected !== undefined || check.computed !== undefined) {
      const dl = element("dl", undefined, "diff");
      fillFields(dl, [
        ["expected", shown(check.expected)],
        ["computed", shown(check.computed)],
      ]);
      item.append(dl);
    }
    list.append(item);
  }
  const failed = report.checks.filter((c) => c.status !== "passed").length;
  verdict.textContent = report.verified
    ? `Verified: all ${report.checks.length} checks passed.`
    : `NOT verified: ${failed} of ${report.checks.length} checks failed or could not run.`;
  verdict.className = `verdict ${report.verified ? "ok" : "bad"}`;
  verdict.dataset.state = report.verified ? "verified" : "refused";
}

function requirePin(verdict) {
  if (pinned) return true;
  verdict.textContent = "Pin a genesis first: without one nothing can be verified.";
  verdict.className = "verdict bad";
  return false;
}

function wireLookup() {
  $("lookup-form").addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    const verdict = $("lookup-verdict");
    if (!requirePin(verdict)) return;
    verdict.textContent = "Checking…";
    verdict.className = "verdict";
    verdict.dataset.state = "checking";
    $("lookup-report").replaceChildren();
    const report = await checkEvent(api, pinned.event, $("lookup-source").value.trim(), $("lookup-id").value.trim());
    renderReport($("lookup-report"), verdict, report);
  });
  $("consistency-form").addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    const verdict = $("consistency-verdict");
    if (!requirePin(verdict)) return;
    verdict.textContent = "Checking…";
    verdict.dataset.state = "checking";
    const report = await checkConsistency(api, pinned.event, Number($("consistency-first").value), Number($("consistency-second").value));
    renderReport($("consistency-report"), verdict, report);
  });
}

// --- head, faults ----------------------------------------------------------------------------

let lastHeight = null;

/** A fault or a piece of evidence in one line: its reason, height and the plain members of
 * its evidence (hashes, heights, names); raw blocks are not shown. */
function describeFault(fault) {
  if (typeof fault !== "object" || fault === null) return String(fault);
  const { reason = "fault", height, evidence, block: _block, conflicting, ...rest } = fault;
  const members = { ...rest, ...(typeof evidence === "object" && evidence !== null ? evidence : {}) };
  const parts = Object.entries(members)
    .filter(([, value]) => value !== null && typeof value !== "object")
    .map(([name, value]) => `${name} ${short(value, 24)}`);
  if (conflicting) parts.push("a conflicting block is kept");
  const at = height !== undefined && height !== null ? ` at height ${height}` : "";
  return `${reason}${at}${parts.length ? ` (${parts.join(", ")})` : ""}`;
}

async function refreshHead() {
  try {
    const head = await api.head();
    const attesters = (head.attestations ?? []).map((a) => a.validator);
    let sealedAt = "";
    try {
      sealedAt = (await api.blocks(head.height, 1))[0]?.header?.sealed_at ?? "";
    } catch {
      sealedAt = "";
    }
    fillFields($("head-fields"), [
      ["Height", head.height],
      ["Final height", head.final_height ?? "none yet"],
      ["Tree size", head.tree_size],
      ["Log root", short(head.log_root, 24), head.log_root],
      ["Block hash", short(head.block_hash, 24), head.block_hash],
      ["Attested by (as reported)", attesters.length ? attesters.map((d) => short(d, 24)).join(", ") : "nobody yet"],
      ["Last block", sealedAt ? `${sealedAt} (${ago(sealedAt)})` : "unknown"],
    ]);
    $("head-updated").textContent = `Polled ${new Date().toLocaleTimeString()}; figures as the validator reports them — verify with a lookup.`;
    const fault = $("head-fault");
    fault.hidden = !head.fault;
    fault.textContent = head.fault ? `FAULT reported by this validator: ${describeFault(head.fault)}` : "";
    if (head.height !== lastHeight) {
      lastHeight = head.height;
      if (blocksFrom === null) refreshBlocks();
    }
    await refreshFaults(head.fault);
  } catch (error) {
    fillFields($("head-fields"), [["Head", error.message]]);
  }
}

async function refreshFaults(fault) {
  const list = $("evidence-list");
  let evidence = [];
  try {
    evidence = await api.evidence(20);
  } catch (error) {
    $("faults-summary").textContent = `Evidence unavailable: ${error.message}`;
    return;
  }
  list.replaceChildren();
  for (const item of evidence) {
    const entry = element("li", undefined, "fault");
    entry.append(element("strong", "EVIDENCE"), " ", element("span", describeFault(item)));
    list.append(entry);
  }
  const summary = $("faults-summary");
  if (fault || evidence.length) {
    summary.textContent = `${fault ? "This validator reports a fault. " : ""}${evidence.length} refused block(s) kept as evidence.`;
    summary.className = "fault";
  } else {
    summary.textContent = "No fault reported and no evidence kept.";
    summary.className = "";
  }
}

// --- blocks ----------------------------------------------------------------------------------

let blocksFrom = null; // null: follow the head

async function sealCheck(block) {
  if (!pinned) return "no genesis pinned";
  try {
    await verifyBlockHash(block);
    await verifySealerSignature(block, pinned.config);
    return "passed";
  } catch (error) {
    return `FAILED: ${error.message}`;
  }
}

async function refreshBlocks() {
  const top = lastHeight ?? 0;
  const from = Math.max(0, (blocksFrom ?? top - PAGE + 1));
  let blocks;
  try {
    blocks = await api.blocks(from, PAGE);
  } catch (error) {
    $("blocks-range").textContent = error.message;
    return;
  }
  $("blocks-range").textContent = blocks.length ? `heights ${from}…${from + blocks.length - 1}` : "no blocks";
  const body = $("block-table").tBodies[0];
  const rows = [];
  for (const block of [...blocks].reverse()) {
    const h = block.header;
    const row = element("tr");
    const cell = element("td");
    const open = element("button", h.height, "link");
    open.type = "button";
    open.setAttribute("aria-label", `Show block ${h.height}`);
    open.addEventListener("click", () => showBlock(h.height));
    cell.append(open);
    const seal = await sealCheck(block);
    row.append(
      cell,
      element("td", h.event_count),
      element("td", h.tree_size),
      element("td", h.sealed_at),
      element("td", (block.attestations ?? []).length),
      element("td", seal, seal === "passed" ? "ok" : seal.startsWith("FAILED") ? "bad" : ""),
    );
    rows.push(row);
  }
  body.replaceChildren(...rows);
  drawBars($("events-chart"), blocks.map((b) => [`block ${b.header.height}`, b.header.event_count]));
  drawBars($("rate-chart"), perMinute(blocks));
}

function perMinute(blocks) {
  const counts = new Map();
  for (const block of blocks) {
    const minute = String(block.header.sealed_at).slice(0, 16);
    counts.set(minute, (counts.get(minute) ?? 0) + 1);
  }
  return [...counts.entries()].map(([minute, n]) => [`${minute}Z`, n]);
}

const SVG = "http://www.w3.org/2000/svg";

function drawBars(svg, series) {
  for (const old of svg.querySelectorAll("g")) old.remove();
  const group = document.createElementNS(SVG, "g");
  const max = Math.max(1, ...series.map(([, n]) => n));
  const width = 600 / Math.max(1, series.length);
  series.forEach(([label, n], i) => {
    const height = (n / max) * 100;
    const bar = document.createElementNS(SVG, "rect");
    bar.setAttribute("x", String(i * width + 1));
    bar.setAttribute("y", String(110 - height));
    bar.setAttribute("width", String(Math.max(1, width - 2)));
    bar.setAttribute("height", String(height));
    bar.setAttribute("class", "bar");
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${label}: ${n}`;
    bar.append(title);
    group.append(bar);
  });
  const axis = document.createElementNS(SVG, "line");
  for (const [k, v] of [["x1", 0], ["y1", 110], ["x2", 600], ["y2", 110]]) axis.setAttribute(k, String(v));
  axis.setAttribute("class", "axis");
  group.append(axis);
  const caption = svg.closest("figure")?.querySelector(".peak");
  if (caption) caption.textContent = series.length ? ` — highest bar ${max}, ${series.length} bars` : " — nothing yet";
  svg.append(group);
}

async function showBlock(height) {
  const section = $("block-detail");
  section.hidden = false;
  $("block-detail-title").textContent = `Block ${height}`;
  let block;
  try {
    block = await api.block(height);
  } catch (error) {
    fillFields($("block-fields"), [["Block", error.message]]);
    return;
  }
  const h = block.header;
  fillFields($("block-fields"), [
    ["Height", h.height],
    ["Chain", h.chain_id],
    ["Version", h.version],
    ["Previous hash", short(h.prev_hash, 24), h.prev_hash],
    ["Block hash", short(block.block_hash, 24), block.block_hash],
    ["Tree size", h.tree_size],
    ["Log root", short(h.log_root, 24), h.log_root],
    ["Events", h.event_count],
    ["Sealed at", h.sealed_at],
    ["Sealer", short(h.sealer, 32), h.sealer],
    ["Seal (checked here)", await sealCheck(block)],
  ]);
  const sources = $("block-sources").tBodies[0];
  sources.replaceChildren(
    ...(h.sources ?? []).map((run) => {
      const row = element("tr");
      row.append(element("td", run.topic), element("td", run.partition), element("td", run.first_offset), element("td", run.last_offset));
      return row;
    }),
  );
  $("block-attestations").replaceChildren(
    ...(block.attestations ?? []).map((a) => element("li", `${short(a.validator, 32)} at height ${a.height}`)),
  );
  // Only the envelope's identifying members: an event's `data` is never shown.
  $("block-events").tBodies[0].replaceChildren(
    ...(block.events ?? []).slice(0, 200).map((event) => {
      const row = element("tr");
      row.append(element("td", event.source), element("td", event.id), element("td", event.type), element("td", short(event.signer, 24)), element("td", event.subject ?? ""));
      return row;
    }),
  );
  section.scrollIntoView({ block: "start" });
  $("block-detail-title").focus?.();
}

function wireBlocks() {
  $("blocks-older").addEventListener("click", () => {
    const top = blocksFrom ?? Math.max(0, (lastHeight ?? 0) - PAGE + 1);
    blocksFrom = Math.max(0, top - PAGE);
    refreshBlocks();
  });
  $("blocks-newer").addEventListener("click", () => {
    if (blocksFrom === null) return;
    const next = blocksFrom + PAGE;
    blocksFrom = next + PAGE > (lastHeight ?? 0) ? null : next;
    refreshBlocks();
  });
}

// --- start -----------------------------------------------------------------------------------

async function start() {
  if (!globalThis.crypto?.subtle) $("no-crypto").hidden = false;
  wireGenesis();
  wireLookup();
  wireBlocks();
  await restorePin();
  await refreshHead();
  setInterval(refreshHead, POLL_MS);
  document.body.dataset.ready = "true";
}

start();
