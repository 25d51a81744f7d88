/**
 * The base error of the service. It sits in the kernel below every layer (core ← ingest ← views ←
 * schema ← api), so each layer can extend it while imports still point one way.
 *
 * Messages say what was expected, what was found, and where: "decode(debezium): expected
 * envelope.op to be one of c|u|d|r|t|m, but found 'x' (topic app.public.orders, partition 0, offset 42)".
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'DECODE_FAILED'
  | 'SOURCE_SCHEMA'
  /** The source no longer holds what building views again needs (Kafka retention deleted records). */
  | 'SOURCE_INCOMPLETE'
  | 'REPLICATION'
  | 'REDIS_APPLY'
  | 'STATE_LOST'
  | 'VIEW_UNAVAILABLE'
  | 'KAFKA';

export class ServiceError extends Error {
  readonly code: ErrorCode;
  /** Whether retrying the same operation may succeed (kafkajs' convention). */
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ServiceError';
    this.code = code;
    this.retriable = options.retriable ?? false;
  }
}
