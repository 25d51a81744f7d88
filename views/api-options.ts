/**
 * Checks of the `api` section of a config against the compiled views: every problem is an Issue
 * (the config fails at start listing them all, like the views' own).
 */
import type { ApiLimits, ApiOptions } from './config.ts';
import type { Issue } from './errors.ts';
import type { CompiledView } from './registry.ts';

/** Types a row filter may compare (identities, not measures). */
export const FILTERABLE_TYPES: ReadonlySet<string> = new Set(['bool', 'int2', 'int4', 'int8', 'text', 'varchar', 'bpchar', 'uuid']);

const ROLE_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

export function validateApiOptions(api: ApiOptions | undefined, views: ReadonlyMap<string, CompiledView>, issues: Issue[]): void {
  if (!api) return;
  validateAuth(api, issues);
  validatePermissions(api, views, issues);
  validateApiLimits(api, issues);
}

function validateAuth(api: ApiOptions, issues: Issue[]): void {
  const auth = api.auth;
  if (!auth) {
    if (api.permissions) issues.push({ path: 'api.permissions', message: 'Expected api.auth (a JWT secret or JWKS URL, or an anonymousRole) for permissions to apply to, but found none' });
    return;
  }
  const jwt = auth.jwt;
  if (jwt) {
    const secret = jwt.secret ?? process.env['CDC_VIEWS_JWT_SECRET'];
    if (!secret && !jwt.jwksUrl) issues.push({ path: 'api.auth.jwt', message: 'Expected a secret (or $CDC_VIEWS_JWT_SECRET) or a jwksUrl, but found neither' });
    if (secret && jwt.jwksUrl) issues.push({ path: 'api.auth.jwt', message: 'Expected a secret or a jwksUrl, but found both' });
    if (secret && Buffer.byteLength(secret) < 32) issues.push({ path: 'api.auth.jwt.secret', message: `Expected an HS256 secret of at least 32 bytes, but found ${Buffer.byteLength(secret)}` });
    if (jwt.jwksUrl !== undefined && !/^https?:\/\//.test(jwt.jwksUrl)) issues.push({ path: 'api.auth.jwt.jwksUrl', message: `Expected an http(s) URL, but found '${jwt.jwksUrl}'` });
  } else if (auth.anonymousRole === undefined) {
    issues.push({ path: 'api.auth', message: 'Expected jwt or anonymousRole, but found neither' });
  }
  if (auth.anonymousRole !== undefined && !ROLE_NAME.test(auth.anonymousRole)) {
    issues.push({ path: 'api.auth.anonymousRole', message: `Expected a role name of letters, digits, '_', '.', ':' or '-', but found '${auth.anonymousRole}'` });
  }
}

function validatePermissions(api: ApiOptions, views: ReadonlyMap<string, CompiledView>, issues: Issue[]): void {
  for (const [viewName, roles] of Object.entries(api.permissions ?? {})) {
    const path = `api.permissions.${viewName}`;
    const view = views.get(viewName);
    if (!view) {
      issues.push({ path, message: `Expected the name of a declared view, but found '${viewName}' (views: ${[...views.keys()].join(', ')})` });
      continue;
    }
    const fieldNames = new Set(view.fields.map((f) => f.name));
    for (const [role, permission] of Object.entries(roles ?? {})) {
      const at = `${path}.${role}`;
      if (!ROLE_NAME.test(role)) issues.push({ path: at, message: `Expected a role name of letters, digits, '_', '.', ':' or '-', but found '${role}'` });
      if (!permission || typeof permission !== 'object') {
        issues.push({ path: at, message: 'Expected an object { filter?, fields?, maxPageSize? }' });
        continue;
      }
      for (const [field, value] of Object.entries(permission.filter ?? {})) {
        const type = view.fields.find((f) => f.name === field)?.type;
        if (!type) issues.push({ path: `${at}.filter.${field}`, message: `Expected a field of ${viewName} (${[...fieldNames].join(', ')}), but found '${field}'` });
        else if (!FILTERABLE_TYPES.has(type)) issues.push({ path: `${at}.filter.${field}`, message: `Expected a field of type ${[...FILTERABLE_TYPES].join(', ')} to filter by, but ${field} is ${type}` });
        const isClaim = value !== null && typeof value === 'object' && 'claim' in value;
        if (isClaim && (typeof value.claim !== 'string' || value.claim === '')) issues.push({ path: `${at}.filter.${field}`, message: 'Expected { claim: <claim name> } or a constant' });
        if (value === null || value === undefined) issues.push({ path: `${at}.filter.${field}`, message: 'Expected { claim: <claim name> } or a constant, but found null' });
      }
      if (permission.fields !== undefined) {
        for (const field of permission.fields) {
          if (!fieldNames.has(field)) issues.push({ path: `${at}.fields`, message: `Expected fields of ${viewName} (${[...fieldNames].join(', ')}), but found '${field}'` });
        }
        const missingKeys = view.keyFields.filter((k) => !permission.fields!.includes(k.name)).map((k) => k.name);
        if (missingKeys.length > 0) issues.push({ path: `${at}.fields`, message: `Expected the key fields of ${viewName} among the fields (rows are addressed by them), but ${missingKeys.join(', ')} missing` });
      }
      if (permission.maxPageSize !== undefined && (!Number.isInteger(permission.maxPageSize) || permission.maxPageSize < 1 || permission.maxPageSize > 1000)) {
        issues.push({ path: `${at}.maxPageSize`, message: `Expected an integer from 1 to 1000, but found ${permission.maxPageSize}` });
      }
    }
  }
}

/** `api.cors`, `api.limits` and `api.metrics`: absolute origins, positive integer limits, a port. */
export function validateApiLimits(api: ApiOptions, issues: Issue[]): void {
  const cors = api.cors;
  if (cors !== undefined) {
    if (!Array.isArray(cors.origins)) {
      issues.push({ path: 'api.cors.origins', message: `Expected a list of origins like 'https://app.example.com' (or '*'), but found ${JSON.stringify(cors.origins)}` });
    } else {
      cors.origins.forEach((origin: unknown, i) => {
        if (origin === '*' || (typeof origin === 'string' && isAbsoluteOrigin(origin))) return;
        issues.push({ path: `api.cors.origins[${i}]`, message: `Expected an origin like 'https://app.example.com' or 'http://localhost:3000' (scheme and host, no path) or '*', but found ${JSON.stringify(origin)}` });
      });
      if (cors.credentials === true && cors.origins.includes('*')) {
        issues.push({ path: 'api.cors.credentials', message: "Expected credentials only with listed origins (browsers refuse credentials with '*'), but found '*' among the origins" });
      }
    }
    if (cors.credentials !== undefined && typeof cors.credentials !== 'boolean') {
      issues.push({ path: 'api.cors.credentials', message: `Expected true or false, but found ${JSON.stringify(cors.credentials)}` });
    }
  }
  for (const [name, value] of Object.entries(api.limits ?? {})) {
    if (!LIMITS.includes(name)) {
      issues.push({ path: `api.limits.${name}`, message: `Expected one of ${LIMITS.join(', ')}, but found '${name}'` });
      continue;
    }
    if (value === undefined) continue;
    // setTimeout and friends take at most 2^31 - 1 ms; no limit needs more than that either.
    if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 2 ** 31 - 1) {
      issues.push({ path: `api.limits.${name}`, message: `Expected a positive integer, but found ${JSON.stringify(value)}` });
    }
  }
  const metrics = api.metrics;
  if (metrics !== undefined) {
    if (metrics.port !== undefined && (!Number.isInteger(metrics.port) || metrics.port < 0 || metrics.port > 65535)) {
      issues.push({ path: 'api.metrics.port', message: `Expected a port number from 0 to 65535, but found ${JSON.stringify(metrics.port)}` });
    } else if (metrics.port !== undefined && metrics.port !== 0 && metrics.port === api.port) {
      issues.push({ path: 'api.metrics.port', message: `Expected a port other than the API's own (api.port), but found ${metrics.port} for both` });
    }
    if (metrics.host !== undefined && (typeof metrics.host !== 'string' || metrics.host === '')) {
      issues.push({ path: 'api.metrics.host', message: `Expected a host name or address, but found ${JSON.stringify(metrics.host)}` });
    } else if (metrics.host !== undefined && metrics.port === undefined) {
      issues.push({ path: 'api.metrics.host', message: 'Expected api.metrics.port with api.metrics.host (/metrics is otherwise served on the API port), but found no port' });
    }
    if (metrics.token !== undefined && (typeof metrics.token !== 'string' || metrics.token.trim() === '' || /\s/.test(metrics.token))) {
      issues.push({ path: 'api.metrics.token', message: 'Expected a token without spaces (sent as Authorization: Bearer <token>), but found an empty one or one with spaces' });
    }
  }
}

const LIMITS: readonly string[] = ['maxDepth', 'maxAliases', 'maxCost', 'maxTokens', 'maxDirectives', 'maxBodyBytes', 'maxConnectionsPerIp', 'maxSubscriptionsPerConnection', 'idleTimeoutMs', 'batching', 'sortInMemoryRows'] satisfies (keyof ApiLimits)[];

/** What a browser sends as Origin: scheme, host and port only, e.g. 'https://app.example.com'. */
function isAbsoluteOrigin(origin: string): boolean {
  if (!URL.canParse(origin)) return false;
  const url = new URL(origin);
  return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === origin;
}
