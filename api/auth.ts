/**
 * Who is calling: a bearer JWT (HS256 secret, or keys from a JWKS URL that rotate) verified with
 * `jose`, turned into a Caller (role and claims). No token: the anonymous role when one is
 * configured, else 401. Without `api.auth` every caller is the open caller (all views).
 */
import type { IncomingMessage } from 'node:http';
import type { Plugin } from 'graphql-yoga';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { WebSocket } from 'ws';
import type { SchemaContext, ViewDataSource } from '../schema/build-schema.ts';
import { OPEN_CALLER, type Caller, type Permissions } from '../schema/permissions.ts';
import type { AuthOptions } from '../views/config.ts';

/** After fetching the keys, how long before a token naming an unknown key may fetch them again (rotation). */
const JWKS_COOLDOWN_MS = 5_000;

/** A caller refused at the door; `status` is the HTTP status to answer (401, or 403 for a role that reads nothing). */
export class AuthError extends Error {
  readonly status: 401 | 403;
  readonly code: string;
  constructor(status: 401 | 403, code: string, message: string) {
    super(message);
    this.name = 'AuthError';
    this.status = status;
    this.code = code;
  }
}

export interface AuthenticatorOptions {
  readonly auth: AuthOptions | undefined;
  /** Whether a role reads any view (a role that reads none is refused). */
  readonly roleReadsAnything: (role: string) => boolean;
}

export class Authenticator {
  private readonly auth: AuthOptions | undefined;
  private readonly key: Uint8Array | JWTVerifyGetKey | null;
  private readonly roleReadsAnything: (role: string) => boolean;

  constructor(options: AuthenticatorOptions) {
    this.auth = options.auth;
    this.roleReadsAnything = options.roleReadsAnything;
    const jwt = options.auth?.jwt;
    const secret = jwt?.secret ?? process.env['CDC_VIEWS_JWT_SECRET'];
    // createRemoteJWKSet caches the keys and fetches them again when a token names an unknown `kid`.
    this.key = !jwt ? null : jwt.jwksUrl ? createRemoteJWKSet(new URL(jwt.jwksUrl), { cooldownDuration: JWKS_COOLDOWN_MS }) : new TextEncoder().encode(secret);
  }

  get enabled(): boolean {
    return this.auth !== undefined;
  }

  /** The caller of a request from its `Authorization` header (or the WebSocket's connection params). */
  async authenticate(authorization: string | null | undefined): Promise<Caller> {
    if (!this.auth) return OPEN_CALLER;
    if (!authorization) {
      if (this.auth.anonymousRole !== undefined) return { role: this.auth.anonymousRole, claims: {}, expiresAt: null };
      throw new AuthError(401, 'UNAUTHENTICATED', 'Expected an Authorization header with a bearer token');
    }
    const token = /^Bearer\s+(\S+)$/i.exec(authorization)?.[1];
    if (!token || token.length > 16_384) throw new AuthError(401, 'UNAUTHENTICATED', "Expected the Authorization header to be 'Bearer <token>'");
    if (!this.key) throw new AuthError(401, 'UNAUTHENTICATED', 'This API takes no tokens (only anonymous access is configured)');
    const payload = await this.verify(token);
    const jwt = this.auth.jwt!;
    const claims = (jwt.claimsNamespace ? payload[jwt.claimsNamespace] : payload) as Record<string, unknown> | undefined;
    if (!claims || typeof claims !== 'object') throw new AuthError(401, 'UNAUTHENTICATED', `Expected the token's claims under '${jwt.claimsNamespace}', but found none`);
    const roleClaim = jwt.roleClaim ?? 'role';
    const role = claims[roleClaim];
    if (typeof role !== 'string' || role === '') throw new AuthError(401, 'UNAUTHENTICATED', `Expected the token to name a role in claim '${roleClaim}', but found ${role === undefined ? 'none' : JSON.stringify(role)}`);
    if (!this.roleReadsAnything(role)) throw new AuthError(403, 'FORBIDDEN', `Role ${role} may read no view`);
    return { role, claims, expiresAt: payload.exp === undefined ? null : payload.exp * 1000 };
  }

  private async verify(token: string): Promise<JWTPayload> {
    const jwt = this.auth!.jwt!;
    const options = {
      ...(jwt.issuer === undefined ? {} : { issuer: jwt.issuer }),
      ...(jwt.audience === undefined ? {} : { audience: jwt.audience }),
      // A secret only ever verifies HS256; keys from a JWKS only their asymmetric algorithms ('none' never).
      algorithms: jwt.jwksUrl ? ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'] : ['HS256'],
    };
    try {
      const { payload } =
        typeof this.key === 'function' ? await jwtVerify(token, this.key, options) : await jwtVerify(token, this.key as Uint8Array, options);
      return payload;
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw new AuthError(401, 'TOKEN_EXPIRED', 'The token expired');
      if (error instanceof joseErrors.JWTClaimValidationFailed) throw new AuthError(401, 'UNAUTHENTICATED', `The token was refused: ${error.message}`);
      if (error instanceof joseErrors.JOSEError) throw new AuthError(401, 'UNAUTHENTICATED', 'The token was refused: its signature, algorithm or key is not accepted');
      throw error;
    }
  }
}

/**
 * The door of the API: authenticates each HTTP request (401/403 with the reason) and each
 * WebSocket connection (closed with 4401/4403 and the reason; closed again when its token
 * expires), and gives each operation the schema of its caller's role and what it may read.
 */
export class AuthGate {
  private readonly authenticator: Authenticator;
  private readonly permissions: Permissions;
  private readonly development: boolean;
  private readonly byRequest = new WeakMap<Request, Caller>();
  private readonly byConnection = new WeakMap<object, Caller>();
  /** Verified callers by Authorization header, until their token expires (at most a minute: see cachedCaller). */
  private readonly callers = new Map<string, { readonly caller: Caller; readonly until: number }>();

  constructor(authenticator: Authenticator, permissions: Permissions, development: boolean) {
    this.authenticator = authenticator;
    this.permissions = permissions;
    this.development = development;
  }

  /** Yoga plugin: the caller of an HTTP request, and the schema of its role. */
  plugin(): Plugin {
    return {
      onRequest: async ({ request, url, endResponse, fetchAPI }) => {
        if (url.pathname !== '/graphql') return;
        // GraphiQL's page holds no data; the queries it sends carry their own token.
        const page = this.development && request.method === 'GET' && !url.searchParams.has('query') && (request.headers.get('accept') ?? '').includes('text/html');
        if (page) return;
        try {
          this.byRequest.set(request, await this.authenticator.authenticate(request.headers.get('authorization')));
        } catch (error) {
          const refused = error instanceof AuthError ? error : new AuthError(401, 'UNAUTHENTICATED', 'The token could not be verified right now (its keys are unreachable); retry shortly');
          endResponse(
            new fetchAPI.Response(JSON.stringify({ errors: [{ message: refused.message, extensions: { code: refused.code } }] }), {
              status: refused.status,
              headers: { 'content-type': 'application/json', ...(refused.status === 401 ? { 'www-authenticate': 'Bearer' } : {}) },
            }),
          );
        }
      },
      onEnveloped: ({ context, setSchema }) => {
        setSchema(this.permissions.schemaFor(this.callerOf(context as InitialContext).role));
      },
    };
  }

  /**
   * The caller of an Authorization header, remembered until its token expires and at most a
   * minute (a key withdrawn from the JWKS stops being accepted within that); null when refused —
   * the request then takes yoga's path, which answers 401/403 with the reason.
   */
  async cachedCaller(authorization: string | undefined): Promise<Caller | null> {
    const key = authorization ?? '';
    const known = this.callers.get(key);
    if (known && known.until > Date.now()) return known.caller;
    try {
      const caller = await this.authenticator.authenticate(authorization ?? null);
      if (this.callers.size >= 10_000) this.callers.delete(this.callers.keys().next().value!);
      this.callers.set(key, { caller, until: Math.min(caller.expiresAt ?? Infinity, Date.now() + 60_000) });
      return caller;
    } catch {
      this.callers.delete(key);
      return null;
    }
  }

  private callerOf(initial: InitialContext): Caller {
    const caller = initial.caller ?? (initial.request ? this.byRequest.get(initial.request) : undefined);
    if (caller) return caller;
    if (!this.authenticator.enabled) return OPEN_CALLER;
    // Every path to an operation passed the door; one that did not is refused, never served open.
    throw new AuthError(401, 'UNAUTHENTICATED', 'Expected an authenticated request');
  }

  /** The GraphQL context of an operation. */
  context(views: ViewDataSource, initial: InitialContext): SchemaContext {
    const caller = this.callerOf(initial);
    return { views, caller, access: this.permissions.accessFor(caller), extensions: {} };
  }

  /**
   * graphql-ws `onConnect`: the token from the connection params (`authorization`) or the upgrade
   * request's header. A refused connection is closed with the reason; an accepted one is closed
   * when its token expires.
   */
  async connect(ctx: WsContext): Promise<boolean> {
    const params = ctx.connectionParams ?? {};
    const fromParams = params['authorization'] ?? params['Authorization'];
    const header = typeof fromParams === 'string' ? fromParams : ctx.extra.request.headers['authorization'];
    try {
      const caller = await this.authenticator.authenticate(header ?? null);
      this.byConnection.set(ctx.extra, caller);
      if (caller.expiresAt !== null) {
        const timer = setTimeout(() => ctx.extra.socket.close(4401, 'The token expired'), Math.max(0, Math.min(caller.expiresAt - Date.now(), 2 ** 31 - 1)));
        ctx.extra.socket.once('close', () => clearTimeout(timer));
      }
      return true;
    } catch (error) {
      const refused = error instanceof AuthError ? error : new AuthError(401, 'UNAUTHENTICATED', 'The token could not be verified right now');
      // A close reason is at most 123 bytes.
      ctx.extra.socket.close(refused.status === 401 ? 4401 : 4403, Buffer.from(refused.message).subarray(0, 120).toString());
      return false;
    }
  }

  /** The caller of a WebSocket connection (set by `connect`). */
  connectionCaller(extra: object): Caller | undefined {
    return this.byConnection.get(extra);
  }
}

interface InitialContext {
  readonly request?: Request;
  readonly caller?: Caller;
}

/** What AuthGate needs of a graphql-ws connection context. */
interface WsContext {
  readonly connectionParams?: Readonly<Record<string, unknown>> | undefined;
  readonly extra: { readonly request: IncomingMessage; readonly socket: WebSocket };
}
