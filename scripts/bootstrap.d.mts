/** Types of scripts/bootstrap.mjs (plain JavaScript: it runs before node_modules exists). */
export interface Lockfile {
  readonly packages?: Readonly<Record<string, { readonly version?: string; readonly optional?: boolean; readonly devOptional?: boolean }>>;
}
export function dependenciesStale(lock: Lockfile | null, installed: Lockfile | null): string | null;
