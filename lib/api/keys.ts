/**
 * Keys of keyed streams and of map state: any JSON value made of strings, numbers, booleans and
 * arrays or objects of them, not only strings. Inside the engine a key travels as one string (the
 * record writer hashes it to a consumer subtask, the keyed state backend indexes by it): a string
 * key is itself — so string keys route and store exactly as before — and any other key is a marker
 * character followed by its JSON text. Two keys are the same key when their JSON texts are equal
 * (an object's key order counts: build object keys in one order).
 */

export type Key = string | number | boolean | Key[] | { [k: string]: Key };

/** Starts the encoding of a key that is not a plain string (a control character no sensible key starts with). */
const MARK = '\u0001';
const MARK_CODE = MARK.charCodeAt(0);

export class KeyError extends Error {
  override name = 'KeyError';
}

/**
 * The engine's string for a key. Map state encodes a key on every get and put (a window's
 * [start, end] twice per element), so the common case costs no more than it must: the check
 * builds no path text unless it fails, and an array of numbers is written by concatenation (the
 * same text as JSON.stringify, which took ~300 ns for two epoch milliseconds against ~40).
 */
export function encodeKey(key: Key, where = 'key'): string {
  if (typeof key === 'string') return key.charCodeAt(0) === MARK_CODE ? MARK + JSON.stringify(key) : key;
  if (Array.isArray(key)) {
    const numbers = numberList(key);
    if (numbers !== undefined) return numbers;
  }
  if (!isKey(key)) check(key, where);
  return MARK + JSON.stringify(key);
}

/**
 * An array of finite numbers, encoded (MARK and its JSON text: a finite number's JSON is its
 * String, -0 included); undefined for any other array.
 */
function numberList(key: Key[]): string | undefined {
  let out = MARK + '[';
  for (let i = 0; i < key.length; i++) {
    const k = key[i];
    if (typeof k !== 'number' || !Number.isFinite(k)) return undefined;
    out += i === 0 ? String(k) : ',' + String(k);
  }
  return out + ']';
}

/** True for a valid key; allocates nothing (`check` names what is wrong, once this said it is). */
function isKey(key: unknown): boolean {
  switch (typeof key) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(key);
    case 'object': {
      if (key === null) return false;
      if (Array.isArray(key)) {
        for (let i = 0; i < key.length; i++) if (!isKey(key[i])) return false;
        return true;
      }
      for (const k in key) if (Object.hasOwn(key, k) && !isKey((key as Record<string, unknown>)[k])) return false;
      return true;
    }
    default:
      return false;
  }
}

/** The key an encoded string stands for. */
export function decodeKey<K extends Key = Key>(encoded: string): K {
  if (encoded.charCodeAt(0) !== MARK_CODE) return encoded as K;
  return (digitPair(encoded) ?? JSON.parse(encoded.slice(1))) as K;
}

/**
 * `MARK[a,b]` with a and b plain non-negative integers (a window's [start, end]), read without
 * JSON.parse (~250 ns a key, once per key and window when windows fire); undefined for anything else.
 */
function digitPair(encoded: string): [number, number] | undefined {
  const n = encoded.length;
  if (n < 6 || n > 40 || encoded.charCodeAt(1) !== 0x5b || encoded.charCodeAt(n - 1) !== 0x5d) return undefined;
  let comma = -1;
  for (let i = 2; i < n - 1; i++) {
    const c = encoded.charCodeAt(i);
    if (c === 0x2c && comma < 0 && i > 2) comma = i;
    else if (c < 0x30 || c > 0x39) return undefined;
  }
  // No leading zeros but "0" itself: the text is then exactly the numbers' JSON.
  if (comma < 0 || comma === n - 2 || (encoded.charCodeAt(2) === 0x30 && comma > 3) || (encoded.charCodeAt(comma + 1) === 0x30 && comma + 2 < n - 1)) return undefined;
  const a = Number(encoded.slice(2, comma));
  const b = Number(encoded.slice(comma + 1, n - 1));
  return Number.isSafeInteger(a) && Number.isSafeInteger(b) ? [a, b] : undefined;
}

function check(key: unknown, where: string): void {
  if (typeof key === 'number') {
    if (!Number.isFinite(key)) throw new KeyError(`${where} is ${key}: a key must be a finite number, a string, a boolean, or an array or object of them`);
    return;
  }
  if (typeof key === 'string' || typeof key === 'boolean') return;
  if (Array.isArray(key)) return key.forEach((k, i) => check(k, `${where}[${i}]`));
  if (key !== null && typeof key === 'object') return Object.entries(key).forEach(([k, v]) => check(v, `${where}.${k}`));
  throw new KeyError(`${where} is ${key === null ? 'null' : typeof key}: a key must be a string, a finite number, a boolean, or an array or object of them`);
}
