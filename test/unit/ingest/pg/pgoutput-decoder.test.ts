/**
 * pgoutput v1 messages, written byte by byte from the protocol documentation
 * (https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html).
 */
import { describe, expect, it } from 'vitest';
import { decodePgOutput, decodeReplicationFrame, encodeStandbyStatus, formatLsn, parseLsn, PG_EPOCH_MICROS } from '../../../../ingest/pg/pgoutput-decoder.ts';

class Writer {
  private parts: Buffer[] = [];
  byte(tag: string | number): this {
    this.parts.push(Buffer.from([typeof tag === 'string' ? tag.charCodeAt(0) : tag]));
    return this;
  }
  i16(n: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(n);
    this.parts.push(b);
    return this;
  }
  i32(n: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    this.parts.push(b);
    return this;
  }
  u64(n: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(n);
    this.parts.push(b);
    return this;
  }
  string(s: string): this {
    this.parts.push(Buffer.from(`${s}\0`));
    return this;
  }
  /** TupleData: null → 'n', undefined → 'u' (unchanged TOAST), text → 't'. */
  tuple(values: (string | null | undefined)[]): this {
    this.i16(values.length);
    for (const v of values) {
      if (v === null) this.byte('n');
      else if (v === undefined) this.byte('u');
      else this.byte('t').i32(Buffer.byteLength(v)).parts.push(Buffer.from(v));
    }
    return this;
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

describe('decodePgOutput', () => {
  it('Begin and Commit carry the LSNs, commit time and xid', () => {
    expect(decodePgOutput(new Writer().byte('B').u64(0x16b374d848n).u64(123n).i32(777).done())).toEqual({
      tag: 'begin',
      finalLsn: 0x16b374d848n,
      commitTimeUs: 123n,
      xid: 777,
    });
    expect(decodePgOutput(new Writer().byte('C').byte(0).u64(10n).u64(20n).u64(30n).done())).toEqual({
      tag: 'commit',
      commitLsn: 10n,
      endLsn: 20n,
      commitTimeUs: 30n,
    });
  });

  it('Relation lists columns with their key flag, type oid and type modifier', () => {
    const msg = new Writer().byte('R').i32(16384).string('public').string('orders').byte('f').i16(2);
    msg.byte(1).string('id').i32(23).i32(-1).byte(0).string('amount').i32(1700).i32(786438);
    expect(decodePgOutput(msg.done())).toEqual({
      tag: 'relation',
      oid: 16384,
      schema: 'public',
      name: 'orders',
      replicaIdentity: 'f',
      columns: [
        { name: 'id', typeOid: 23, typeModifier: -1, isKey: true },
        { name: 'amount', typeOid: 1700, typeModifier: 786438, isKey: false },
      ],
    });
  });

  it('Insert, Update (with a key-only or a full old tuple) and Delete carry tuples; u marks unchanged TOAST', () => {
    expect(decodePgOutput(new Writer().byte('I').i32(16384).byte('N').tuple(['1', null, 'héllo']).done())).toEqual({
      tag: 'insert',
      relation: 16384,
      newTuple: ['1', null, 'héllo'],
    });
    expect(decodePgOutput(new Writer().byte('U').i32(5).byte('N').tuple(['1', undefined]).done())).toEqual({
      tag: 'update',
      relation: 5,
      oldKind: null,
      oldTuple: null,
      newTuple: ['1', undefined],
    });
    expect(decodePgOutput(new Writer().byte('U').i32(5).byte('K').tuple(['1', null]).byte('N').tuple(['2', 'x']).done())).toMatchObject({
      oldKind: 'K',
      oldTuple: ['1', null],
      newTuple: ['2', 'x'],
    });
    expect(decodePgOutput(new Writer().byte('D').i32(5).byte('O').tuple(['2', 'x']).done())).toEqual({
      tag: 'delete',
      relation: 5,
      oldKind: 'O',
      oldTuple: ['2', 'x'],
    });
  });

  it('Truncate lists relations; Message carries prefix and content', () => {
    expect(decodePgOutput(new Writer().byte('T').i32(2).byte(0).i32(5).i32(6).done())).toEqual({ tag: 'truncate', relations: [5, 6] });
    expect(decodePgOutput(new Writer().byte('M').byte(1).u64(99n).string('app').i32(2).byte('h').byte('i').done())).toEqual({
      tag: 'message',
      transactional: true,
      lsn: 99n,
      prefix: 'app',
      content: 'hi',
    });
  });

  it('rejects an unknown tag with a message naming it', () => {
    expect(() => decodePgOutput(Buffer.from('Zxx'))).toThrow("decode(pgoutput): expected a message tag B|C|O|R|Y|I|U|D|T|M, but found 'Z'");
  });
});

describe('replication frames', () => {
  it('XLogData wraps a message with its start LSN; keepalives carry walEnd and the reply flag', () => {
    const xlog = Buffer.concat([new Writer().byte('w').u64(100n).u64(200n).u64(0n).done(), new Writer().byte('B').u64(1n).u64(2n).i32(3).done()]);
    expect(decodeReplicationFrame(xlog)).toEqual({ kind: 'xlog', dataStart: 100n, walEnd: 200n, message: { tag: 'begin', finalLsn: 1n, commitTimeUs: 2n, xid: 3 } });
    expect(decodeReplicationFrame(new Writer().byte('k').u64(500n).u64(0n).byte(1).done())).toEqual({ kind: 'keepalive', walEnd: 500n, replyRequested: true });
  });

  it('standby status reports the same LSN as written, flushed and applied', () => {
    const buf = encodeStandbyStatus(0x16b374d848n, PG_EPOCH_MICROS + 5n);
    expect(buf[0]).toBe(0x72);
    expect([buf.readBigUInt64BE(1), buf.readBigUInt64BE(9), buf.readBigUInt64BE(17)]).toEqual([0x16b374d848n, 0x16b374d848n, 0x16b374d848n]);
    expect(buf.readBigInt64BE(25)).toBe(5n);
  });

  it('LSNs round-trip through their text form', () => {
    expect(parseLsn('16/B374D848')).toBe(0x16b374d848n);
    expect(formatLsn(0x16b374d848n)).toBe('16/B374D848');
  });
});
