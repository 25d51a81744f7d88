/**
 * Unchanged TOAST placeholders (§4.2): each form the connector option `unavailable.value.placeholder` takes in a
 * row, which decodes to UNAVAILABLE rather than to a value.
 *
 *   placeholder => "<text>"                                   -- text, varchar, json, xml
 *                | "<base64 of its bytes>"                    -- bytea
 *                | ["<text>"] | ["<base64>"] | ["<uuid>"]     -- text[], bytea[], uuid[] (v3 UUID of its bytes)
 *                | [<its bytes as signed integers>…]          -- int[], bigint[]
 *                | {"<text>": "<text>"}                       -- hstore
 */
import { createHash } from 'node:crypto';
import { isObject } from './json.ts';
import type { Json } from './json.ts';

/** Every form `unavailable.value.placeholder` takes, per io.debezium.connector.postgresql.UnchangedToastedPlaceholder. */
export interface Placeholders {
  /** text, varchar, json, xml; and the element of a text[] */
  readonly text: string;
  /** bytea (base64 in JSON); and the element of a bytea[] */
  readonly base64: string;
  /** int[] / bigint[]: the placeholder's (signed) byte values */
  readonly byteValues: readonly number[];
  /** uuid[]: UUID.nameUUIDFromBytes(placeholder bytes), an MD5 name-based (version 3) UUID */
  readonly uuid: string;
}

export function placeholdersFor(configured: string): Placeholders {
  const bytes = configured.startsWith('hex:')
    ? Buffer.from(configured.slice(4), 'hex')
    : Buffer.from(configured, 'utf8');
  const md5 = createHash('md5').update(bytes).digest();
  md5[6] = ((md5[6] ?? 0) & 0x0f) | 0x30;
  md5[8] = ((md5[8] ?? 0) & 0x3f) | 0x80;
  const hex = md5.toString('hex');
  return {
    text: bytes.toString('utf8'),
    base64: bytes.toString('base64'),
    byteValues: [...new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length)],
    uuid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
  };
}

/** A text[]/bytea[]/uuid[] of the one placeholder element, an int[] of its bytes, or the hstore map. */
export function isCompositePlaceholder(raw: Json, placeholder: Placeholders): boolean {
  if (Array.isArray(raw)) {
    if (raw.length === 1) {
      const element = raw[0];
      return element === placeholder.text || element === placeholder.base64 || element === placeholder.uuid;
    }
    const bytes = placeholder.byteValues;
    if (raw.length !== bytes.length) return false;
    for (let i = 0; i < bytes.length; i++) if (raw[i] !== bytes[i]) return false;
    return true;
  }
  if (!isObject(raw)) return false;
  const keys = Object.keys(raw);
  return keys.length === 1 && keys[0] === placeholder.text && raw[placeholder.text] === placeholder.text;
}
