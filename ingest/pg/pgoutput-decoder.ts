/**
 * pgoutput (logical replication protocol version 1) → messages, and the replication stream frames
 * around them. https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html
 *
 * CopyData frames from the server:
 *   XLogData          'w' Int64 dataStart  Int64 walEnd  Int64 sendTime  Byte[n] pgoutput message
 *   Primary keepalive 'k' Int64 walEnd     Int64 sendTime Byte1 replyRequested
 *
 * pgoutput messages (v1):
 *   Begin    'B' Int64 finalLsn  Int64 commitTime  Int32 xid
 *   Commit   'C' Int8 flags  Int64 commitLsn  Int64 endLsn  Int64 commitTime
 *   Origin   'O' Int64 lsn  String name
 *   Relation 'R' Int32 oid  String namespace  String name  Int8 replicaIdentity  Int16 ncols
 *                (Int8 flags(1 = key)  String name  Int32 typeOid  Int32 typmod)×ncols
 *   Type     'Y' Int32 oid  String namespace  String name
 *   Insert   'I' Int32 oid  'N' TupleData
 *   Update   'U' Int32 oid  [('K'|'O') TupleData]  'N' TupleData
 *   Delete   'D' Int32 oid  ('K'|'O') TupleData
 *   Truncate 'T' Int32 nrels  Int8 options  Int32 oid×nrels
 *   Message  'M' Int8 flags(1 = transactional)  Int64 lsn  String prefix  Int32 n  Byte[n] content
 *   TupleData = Int16 ncols  (('n' | 'u') | ('t' Int32 n Byte[n]))×ncols
 *
 * LSNs are unsigned 64-bit: kept as BigInt. Times are µs since 2000-01-01.
 */
import { ReplicationError } from '../errors.ts';

/** µs between 1970-01-01 and 2000-01-01 (PostgreSQL's epoch). */
export const PG_EPOCH_MICROS = 946_684_800_000_000n;

export interface RelationColumn {
  readonly name: string;
  readonly typeOid: number;
  /** atttypmod: numeric precision/scale, varchar length, … (-1: none). */
  readonly typeModifier: number;
  readonly isKey: boolean;
}

export interface RelationMessage {
  readonly tag: 'relation';
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  /** d default · n nothing · f full · i index */
  readonly replicaIdentity: string;
  readonly columns: readonly RelationColumn[];
}

/** One column of a tuple: null, unchanged TOAST, or PostgreSQL's text output. */
export type TupleValue = null | undefined | string;
/** `undefined` marks an unchanged TOASTed value ('u'). */
export type Tuple = readonly TupleValue[];

export type PgOutputMessage =
  | { readonly tag: 'begin'; readonly finalLsn: bigint; readonly commitTimeUs: bigint; readonly xid: number }
  | { readonly tag: 'commit'; readonly commitLsn: bigint; readonly endLsn: bigint; readonly commitTimeUs: bigint }
  | { readonly tag: 'origin' }
  | RelationMessage
  | { readonly tag: 'type' }
  | { readonly tag: 'insert'; readonly relation: number; readonly newTuple: Tuple }
  | {
      readonly tag: 'update';
      readonly relation: number;
      /** 'K' key columns only, 'O' the whole old row, or absent. */
      readonly oldKind: 'K' | 'O' | null;
      readonly oldTuple: Tuple | null;
      readonly newTuple: Tuple;
    }
  | { readonly tag: 'delete'; readonly relation: number; readonly oldKind: 'K' | 'O'; readonly oldTuple: Tuple }
  | { readonly tag: 'truncate'; readonly relations: readonly number[] }
  | {
      readonly tag: 'message';
      readonly transactional: boolean;
      readonly lsn: bigint;
      readonly prefix: string;
      readonly content: string;
    };

export type ReplicationFrame =
  | { readonly kind: 'xlog'; readonly dataStart: bigint; readonly walEnd: bigint; readonly message: PgOutputMessage }
  | { readonly kind: 'keepalive'; readonly walEnd: bigint; readonly replyRequested: boolean };

/** Decode one CopyData frame of a logical replication stream. */
export function decodeReplicationFrame(frame: Buffer): ReplicationFrame {
  const kind = frame[0];
  if (kind === 0x77 /* w */) {
    return {
      kind: 'xlog',
      dataStart: frame.readBigUInt64BE(1),
      walEnd: frame.readBigUInt64BE(9),
      message: decodePgOutput(frame.subarray(25)),
    };
  }
  if (kind === 0x6b /* k */) {
    return { kind: 'keepalive', walEnd: frame.readBigUInt64BE(1), replyRequested: frame[17] === 1 };
  }
  throw new ReplicationError(`decode(pgoutput): expected a frame of kind 'w' or 'k', but found 0x${(kind ?? 0).toString(16)}`);
}

class Reader {
  offset = 0;
  readonly buf: Buffer;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
  u8(): number {
    return this.buf[this.offset++]!;
  }
  i16(): number {
    const v = this.buf.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }
  i32(): number {
    const v = this.buf.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  u32(): number {
    const v = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return v;
  }
  u64(): bigint {
    const v = this.buf.readBigUInt64BE(this.offset);
    this.offset += 8;
    return v;
  }
  i64(): bigint {
    const v = this.buf.readBigInt64BE(this.offset);
    this.offset += 8;
    return v;
  }
  string(): string {
    const end = this.buf.indexOf(0, this.offset);
    const s = this.buf.toString('utf8', this.offset, end);
    this.offset = end + 1;
    return s;
  }
  bytes(n: number): Buffer {
    const b = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return b;
  }
  tuple(): Tuple {
    const n = this.i16();
    const values: TupleValue[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const kind = this.u8();
      if (kind === 0x6e /* n */) values[i] = null;
      else if (kind === 0x75 /* u */) values[i] = undefined;
      else if (kind === 0x74 /* t */) {
        const len = this.i32();
        values[i] = this.buf.toString('utf8', this.offset, this.offset + len);
        this.offset += len;
      } else {
        throw new ReplicationError(`decode(pgoutput): expected a tuple column kind n|u|t, but found 0x${kind.toString(16)}`);
      }
    }
    return values;
  }
}

/** Decode one pgoutput message (protocol version 1, text values). */
export function decodePgOutput(buf: Buffer): PgOutputMessage {
  const r = new Reader(buf);
  const tag = String.fromCharCode(r.u8());
  switch (tag) {
    case 'B':
      return { tag: 'begin', finalLsn: r.u64(), commitTimeUs: r.i64(), xid: r.u32() };
    case 'C': {
      r.u8();
      return { tag: 'commit', commitLsn: r.u64(), endLsn: r.u64(), commitTimeUs: r.i64() };
    }
    case 'O':
      return { tag: 'origin' };
    case 'Y':
      return { tag: 'type' };
    case 'R': {
      const oid = r.u32();
      const schema = r.string();
      const name = r.string();
      const replicaIdentity = String.fromCharCode(r.u8());
      const n = r.i16();
      const columns: RelationColumn[] = [];
      for (let i = 0; i < n; i++) {
        const flags = r.u8();
        const columnName = r.string();
        const typeOid = r.u32();
        const typeModifier = r.i32();
        columns.push({ name: columnName, typeOid, typeModifier, isKey: (flags & 1) === 1 });
      }
      return { tag: 'relation', oid, schema, name, replicaIdentity, columns };
    }
    case 'I': {
      const relation = r.u32();
      r.u8(); // 'N'
      return { tag: 'insert', relation, newTuple: r.tuple() };
    }
    case 'U': {
      const relation = r.u32();
      let kind = String.fromCharCode(r.u8());
      let oldKind: 'K' | 'O' | null = null;
      let oldTuple: Tuple | null = null;
      if (kind === 'K' || kind === 'O') {
        oldKind = kind;
        oldTuple = r.tuple();
        kind = String.fromCharCode(r.u8());
      }
      return { tag: 'update', relation, oldKind, oldTuple, newTuple: r.tuple() };
    }
    case 'D': {
      const relation = r.u32();
      const oldKind = String.fromCharCode(r.u8()) as 'K' | 'O';
      return { tag: 'delete', relation, oldKind, oldTuple: r.tuple() };
    }
    case 'T': {
      const n = r.i32();
      r.u8(); // options: cascade / restart identity
      const relations: number[] = [];
      for (let i = 0; i < n; i++) relations.push(r.u32());
      return { tag: 'truncate', relations };
    }
    case 'M': {
      const flags = r.u8();
      const lsn = r.u64();
      const prefix = r.string();
      const len = r.i32();
      return { tag: 'message', transactional: (flags & 1) === 1, lsn, prefix, content: r.bytes(len).toString('utf8') };
    }
    default:
      throw new ReplicationError(`decode(pgoutput): expected a message tag B|C|O|R|Y|I|U|D|T|M, but found '${tag}'`);
  }
}

/** '16/B374D848' → 0x16B374D848n */
export function parseLsn(text: string): bigint {
  const [hi, lo] = text.split('/');
  if (hi === undefined || lo === undefined) throw new ReplicationError(`Expected an LSN like '16/B374D848', but found '${text}'`);
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Standby status update: everything up to `lsn` is written, flushed and applied. */
export function encodeStandbyStatus(lsn: bigint, nowMicros: bigint, replyRequested = false): Buffer {
  const buf = Buffer.alloc(34);
  buf[0] = 0x72; // 'r'
  buf.writeBigUInt64BE(lsn, 1);
  buf.writeBigUInt64BE(lsn, 9);
  buf.writeBigUInt64BE(lsn, 17);
  buf.writeBigInt64BE(nowMicros - PG_EPOCH_MICROS, 25);
  buf[33] = replyRequested ? 1 : 0;
  return buf;
}
