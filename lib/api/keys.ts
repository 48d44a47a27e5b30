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

export class KeyError extends Error {
  override name = 'KeyError';
}

/** The engine's string for a key. */
export function encodeKey(key: Key, where = 'key'): string {
  if (typeof key === 'string') return key.startsWith(MARK) ? MARK + JSON.stringify(key) : key;
  check(key, where);
  return MARK + JSON.stringify(key);
}

/** The key an encoded string stands for. */
export function decodeKey<K extends Key = Key>(encoded: string): K {
  return (encoded.startsWith(MARK) ? JSON.parse(encoded.slice(1)) : encoded) as K;
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
