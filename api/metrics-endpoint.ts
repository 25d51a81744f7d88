/**
 * /metrics (config `api.metrics`): on the API's port, or alone on a port of its own (e.g. one only
 * the cluster reaches), and behind a bearer token when one is set.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MetricsOptions } from '../views/config.ts';
import type { Metrics } from './metrics.ts';

export type MetricsHandler = (req: IncomingMessage, res: ServerResponse) => void;

export function metricsHandler(metrics: Metrics, options: MetricsOptions | undefined, logError?: (error: unknown) => void): MetricsHandler {
  const token = options?.token ?? process.env['CDC_VIEWS_METRICS_TOKEN'] ?? '';
  return (req, res) => {
    if (token !== '' && !isBearer(req.headers.authorization, token)) {
      const found = req.headers.authorization === undefined ? 'none' : 'another';
      return sendJson(res, 401, { error: `Expected Authorization: Bearer <the metrics token>, but found ${found}` }, { 'www-authenticate': 'Bearer realm="metrics"' });
    }
    metrics.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
      },
      (error: unknown) => {
        logError?.(error);
        sendJson(res, 500, { error: 'metrics failed' });
      },
    );
  };
}

/** Compared as SHA-256 digests: equal lengths for timingSafeEqual, and no early exit on the first differing byte. */
function isBearer(header: string | undefined, token: string): boolean {
  const match = /^Bearer +(\S+)\s*$/i.exec(header ?? '');
  if (!match) return false;
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(match[1]!), digest(token));
}

export interface MetricsServer {
  readonly url: string;
  close(): Promise<void>;
}

/** A server that answers /metrics and nothing else. */
export async function startMetricsServer(handler: MetricsHandler, port: number, host: string): Promise<MetricsServer> {
  const server: Server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (req, res) => {
    if ((req.url ?? '/').split('?')[0] === '/metrics') return handler(req, res);
    sendJson(res, 404, { error: `Expected /metrics, but found ${(req.url ?? '/').split('?')[0]}` });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
  return {
    url: `http://${shownHost}:${address.port}/metrics`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}
