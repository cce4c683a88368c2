// RFC 8785 JSON Canonicalization Scheme: the bytes every CareLedger hash and signature covers.
//
// The same rules as shared/canonical.py (which the browser tests compare this against):
// object members sorted by their names' UTF-16 code units, no whitespace, strings escaped as
// ECMAScript's JSON.stringify does (only `"`, `\`, and U+0000..U+001F, with \b \f \n \r \t
// and lower-case \u00xx), numbers written as ECMAScript's Number#toString writes them. A
// value with no canonical form (a lone surrogate, NaN or an infinity, anything not JSON) is
// refused with a CanonicalizationError, never encoded approximately.

export class CanonicalizationError extends Error {
  constructor(message) {
    super(message);
    this.name = "CanonicalizationError";
  }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const SHORT_ESCAPES = { 0x08: "\\b", 0x09: "\\t", 0x0a: "\\n", 0x0c: "\\f", 0x0d: "\\r" };

function wellFormed(text) {
  return typeof text.isWellFormed === "function" ? text.isWellFormed() : !LONE_SURROGATE.test(text);
}

function encodeString(text) {
  if (!wellFormed(text)) {
    throw new CanonicalizationError("a string holds a lone surrogate: it has no UTF-8 form");
  }
  let out = '"';
  for (let i = 0; i < text.length; i += 1) {
    const unit = text.charCodeAt(i);
    if (unit === 0x22) {
      out += '\\"';
    } else if (unit === 0x5c) {
      out += "\\\\";
    } else if (unit < 0x20) {
      out += SHORT_ESCAPES[unit] ?? `\\u${unit.toString(16).padStart(4, "0")}`;
    } else {
      out += text[i];
    }
  }
  return `${out}"`;
}

function encodeNumber(value) {
  if (!Number.isFinite(value)) {
    throw new CanonicalizationError(`${value} is not a JSON number`);
  }
  // Number#toString is the ECMAScript algorithm RFC 8785 §3.2.2.3 adopts; -0 is written 0.
  return Object.is(value, -0) ? "0" : String(value);
}

function compareUtf16(a, b) {
  // String comparison in ECMAScript is by UTF-16 code units, which is what RFC 8785 sorts by.
  if (a < b) return -1;
  return a > b ? 1 : 0;
}

function encode(value, depth) {
  if (depth > 1000) {
    throw new CanonicalizationError("value is nested too deeply");
  }
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      return encodeNumber(value);
    case "string":
      return encodeString(value);
    case "object":
      break;
    default:
      throw new CanonicalizationError(`a ${typeof value} is not a JSON value`);
  }
  if (Array.isArray(value)) {
    return `[${value.map((item) => encode(item, depth + 1)).join(",")}]`;
  }
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) {
    throw new CanonicalizationError("only plain objects are JSON objects");
  }
  const names = Object.keys(value).sort(compareUtf16);
  const members = names.map((name) => `${encodeString(name)}:${encode(value[name], depth + 1)}`);
  return `{${members.join(",")}}`;
}

/** The RFC 8785 text of a JSON value (as JSON.parse returns it). */
export function canonicalText(value) {
  return encode(value, 0);
}

/** The RFC 8785 bytes (UTF-8) of a JSON value. */
export function canonicalize(value) {
  return new TextEncoder().encode(canonicalText(value));
}
