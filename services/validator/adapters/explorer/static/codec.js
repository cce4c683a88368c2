// Byte encodings of the wire contracts: lower-case hex (hashes), unpadded base64url
// (signatures), base58btc and did:key (multicodec ed25519-pub 0xed 0x01 + 32 bytes).
// Every decoder is strict, like shared/crypto: a value with two spellings is refused.

export class EncodingError extends Error {
  constructor(message) {
    super(message);
    this.name = "EncodingError";
  }
}

export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Lower-case hex to bytes; `length` (in bytes) is checked when given. */
export function hexToBytes(text, length) {
  if (typeof text !== "string" || !/^(?:[0-9a-f]{2})*$/.test(text)) {
    throw new EncodingError("not lower-case hex of whole bytes");
  }
  if (length !== undefined && text.length !== 2 * length) {
    throw new EncodingError(`expected ${length} bytes of hex, got ${text.length / 2}`);
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i += 1) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** Unpadded base64url to bytes; refuses padding, other alphabets and non-zero spare bits. */
export function base64urlDecode(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new EncodingError("not unpadded base64url");
  }
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let buffer = 0;
  let n = 0;
  for (const char of text) {
    buffer = (buffer << 6) | B64URL.indexOf(char);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n] = (buffer >> bits) & 0xff;
      n += 1;
      buffer &= (1 << bits) - 1;
    }
  }
  if (buffer !== 0) throw new EncodingError("base64url with non-zero trailing bits");
  return out;
}

export function base64urlEncode(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const chunk = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let j = 0; j < chars; j += 1) out += B64URL[(chunk >> (18 - 6 * j)) & 63];
  }
  return out;
}

const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/** base58btc (the Bitcoin alphabet) to bytes; each leading "1" is a zero byte. */
export function base58Decode(text) {
  if (typeof text !== "string" || text.length === 0) throw new EncodingError("empty base58");
  let value = 0n;
  for (const char of text) {
    const digit = B58.indexOf(char);
    if (digit < 0) throw new EncodingError(`${JSON.stringify(char)} is not a base58btc digit`);
    value = value * 58n + BigInt(digit);
  }
  const body = [];
  while (value > 0n) {
    body.unshift(Number(value & 0xffn));
    value >>= 8n;
  }
  const zeros = text.match(/^1*/)[0].length;
  return Uint8Array.from([...new Array(zeros).fill(0), ...body]);
}

/** The raw 32-byte Ed25519 public key a did:key names. */
export function publicKeyFromDid(did) {
  if (typeof did !== "string" || !did.startsWith("did:key:z")) {
    throw new EncodingError("not a base58btc did:key");
  }
  const decoded = base58Decode(did.slice("did:key:z".length));
  if (decoded.length !== 34 || decoded[0] !== 0xed || decoded[1] !== 0x01) {
    throw new EncodingError("the did:key does not name an Ed25519 key (multicodec 0xed01)");
  }
  return decoded.slice(2);
}

export function equalBytes(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

export function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
