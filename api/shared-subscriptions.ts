/**
 * Subscribers that would receive the same payload share its making: each event of a subscription
 * is executed (resolvers, scalars) and serialized once per group, not once per subscriber. A group
 * is every subscription with the same schema (the caller's role), document, operation and variables.
 *
 *   subscribe ─▶ the field's event stream (the changelog hub: one object per change and route)
 *             └▶ per event: made for the group already? ─ yes ─▶ the same result, its JSON text made once
 *                                                       └ no ──▶ execute, keep until every member took it
 *
 * The hub hands every subscriber who sees a change the same way the same event object (decoded once,
 * judged once per route), so an event already made for the group is known by that object; one only
 * this subscriber has (its snapshot rows, a reset, a change its row filter rewrote) is made for it
 * alone. The payload of an event depends on nothing else — the resolvers of a change read neither
 * the context nor the caller (what the caller may see was judged before, in the event) — so sharing
 * never changes what a subscriber receives, only how often it is computed.
 *
 * A shared result carries its own `stringify` (yoga's SSE writer asks a result for it); over
 * graphql-ws, `pushSharedResults` sends it as one pre-serialized `next` message per subscriber.
 */
import { createSourceEventStream, execute, getOperationAST, GraphQLError, type ExecutionArgs, type ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';

type PromiseOrValue<T> = T | Promise<T>;
type SubscribeResult = AsyncIterable<ExecutionResult> | ExecutionResult;
type Subscribe = (args: ExecutionArgs) => PromiseOrValue<SubscribeResult>;

/** Results a group keeps for members yet to take them; past this, the oldest is made again by whoever needs it. */
const MAX_KEPT_PER_GROUP = 64;

/** Subscriptions whose events make equal payloads. */
class Group {
  members = 0;
  /** Results made for events some member has not taken yet. */
  private readonly kept = new Map<object, { readonly result: PromiseOrValue<ExecutionResult>; takers: number }>();

  resultOf(event: object, make: () => PromiseOrValue<ExecutionResult>): PromiseOrValue<ExecutionResult> {
    if (this.members === 1) return make();
    let entry = this.kept.get(event);
    if (!entry) {
      entry = { result: make(), takers: 0 };
      this.kept.set(event, entry);
      if (this.kept.size > MAX_KEPT_PER_GROUP) this.kept.delete(this.kept.keys().next().value!);
    }
    if (++entry.takers >= this.members) this.kept.delete(event);
    return entry.result;
  }
}

export interface SharedSubscriptionsOptions {
  /** Called for each payload made (executed and serialized), which is once per event and group. */
  readonly onPayload?: () => void;
}

export class SharedSubscriptions {
  private readonly options: SharedSubscriptionsOptions;
  private readonly groups = new Map<string, Group>();
  /** Numbers for schemas and documents in group keys (a role's schema and a parsed document are each one object). */
  private readonly ids = new WeakMap<object, number>();
  private lastId = 0;

  constructor(options: SharedSubscriptionsOptions = {}) {
    this.options = options;
  }

  /** Envelop plugin: every subscription (WebSocket and SSE) takes the shared path. */
  plugin(): Plugin {
    return {
      onSubscribe: ({ subscribeFn, setSubscribeFn }) => {
        setSubscribeFn((args) => this.subscribe(args, subscribeFn as Subscribe));
      },
    };
  }

  private async subscribe(args: ExecutionArgs, yogas: Subscribe): Promise<SubscribeResult> {
    const stream = await createSourceEventStream(args);
    // Refused (bad variables, a view the caller may not read, a bad where): yoga's own subscribe
    // answers in its words; it only asks the field again, which opens nothing until read.
    if (!isAsyncIterable(stream)) return yogas(args);
    const variables = args.variableValues && Object.keys(args.variableValues).length > 0 ? JSON.stringify(args.variableValues) : '';
    const key = `${this.idOf(args.schema)}\u0000${this.idOf(args.document)}\u0000${args.operationName ?? ''}\u0000${variables}`;
    let group = this.groups.get(key);
    if (!group) this.groups.set(key, (group = new Group()));
    group.members++;
    const joined = group;
    const leave = (): void => {
      if (--joined.members === 0) this.groups.delete(key);
    };
    const operation = getOperationAST(args.document, args.operationName)!;
    const make = (event: unknown): PromiseOrValue<ExecutionResult> => {
      this.options.onPayload?.();
      const result = execute({ ...args, rootValue: event });
      return result instanceof Promise ? result.then(withOwnStringify) : withOwnStringify(result);
    };
    return mapEvents(
      stream,
      (event) => (typeof event === 'object' && event !== null ? joined.resultOf(event, () => make(event)) : make(event)),
      // As yoga's executor reports an error of the stream: located at the operation.
      (error) => new GraphQLError(error instanceof Error ? error.message : String(error), { originalError: error instanceof Error ? error : null, nodes: [operation] }),
      leave,
    );
  }

  private idOf(object: object): number {
    let id = this.ids.get(object);
    if (id === undefined) this.ids.set(object, (id = ++this.lastId));
    return id;
  }
}

/**
 * A result without errors gets its JSON text made once, however many subscribers send it. (A result
 * with errors is left as it is: yoga masks and trims errors per subscriber.)
 */
function withOwnStringify(result: ExecutionResult): ExecutionResult {
  if (result.errors) return result;
  let text: string | null = null;
  // Not enumerable: JSON.stringify and spreads do not see it.
  Object.defineProperty(result, 'stringify', { value: () => (text ??= JSON.stringify(result)) });
  return result;
}

/** The JSON text a shared result made for itself, or undefined for any other result. */
function ownText(result: unknown): string | undefined {
  const stringify = (result as { stringify?: unknown } | null)?.stringify;
  return typeof stringify === 'function' ? (stringify as () => string)() : undefined;
}

/**
 * A subscription's results over graphql-ws: a shared result goes out as a `next` message built
 * around its JSON text (the bytes graphql-ws would write, without serializing it again); any other
 * result is left to graphql-ws (its `onNext` hook, unused here, does not see the shared ones). `push`
 * resolves once the message is written, so a slow socket still holds the subscription back (and its
 * hub buffer cuts it off) as graphql-ws's own sending does.
 */
export function pushSharedResults(result: SubscribeResult, id: string, push: (message: string) => Promise<void>): SubscribeResult {
  if (!isAsyncIterable(result)) return result;
  const inner = result[Symbol.asyncIterator]();
  const prefix = `{"id":${JSON.stringify(id)},"type":"next","payload":`;
  return {
    async next() {
      for (;;) {
        const step = await inner.next();
        const text = step.done ? undefined : ownText(step.value);
        if (text === undefined) return step;
        await push(`${prefix}${text}}`);
      }
    },
    return: async () => (await inner.return?.()) ?? { done: true, value: undefined },
    throw: async (error?: unknown) => (await inner.throw?.(error)) ?? { done: true, value: undefined },
    [Symbol.asyncIterator]() {
      return this;
    },
  } as AsyncIterableIterator<ExecutionResult>;
}

function isAsyncIterable<T>(value: unknown): value is AsyncIterable<T> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/**
 * Each event mapped, errors of the stream reported through `onError`; `onEnd` once when it ends
 * however it ends. Written out (not an async generator) so that `return()` reaches the stream at
 * once even while a `next()` waits for its event.
 */
function mapEvents<T, R>(stream: AsyncIterable<T>, map: (event: T) => PromiseOrValue<R>, onError: (error: unknown) => unknown, onEnd: () => void): AsyncIterableIterator<R> {
  const inner = stream[Symbol.asyncIterator]();
  let ended = false;
  const end = (): void => {
    if (!ended) {
      ended = true;
      onEnd();
    }
  };
  const close = async (): Promise<IteratorResult<R>> => {
    end();
    await inner.return?.();
    return { done: true, value: undefined };
  };
  return {
    async next() {
      let step: IteratorResult<T>;
      try {
        step = await inner.next();
      } catch (error) {
        end();
        throw onError(error);
      }
      if (step.done) {
        end();
        return { done: true, value: undefined };
      }
      try {
        return { done: false, value: await map(step.value) };
      } catch (error) {
        await close();
        throw error;
      }
    },
    return: close,
    throw: async (error?: unknown) => {
      await close();
      throw error;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
