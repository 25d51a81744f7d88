/**
 * Child processes, and the helpers every server start shares. Bookkeeping: whatever the stack starts dies with
 * this process, even if a test forgets stop() (servers run under scripts/servers.ts's spawnGuarded; one-shot
 * programs such as mvn are killed on exit, and temp folders removed). Helpers: run a program to completion (run),
 * the Java to run with (javaBinary), the tail of a log, `key=value` property files, and the log4j2 configuration
 * every JVM here logs with; and Log, the logger the start functions take.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readSync, rmSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fixFor, locate } from '../provision.ts';
import { type GuardedProcess, MissingBinaryError, spawnGuarded } from '../servers.ts';

export type Log = (line: string) => void;
export const defaultLog: Log = (line) => process.stderr.write(`[kafka-stack] ${line}\n`);

const liveChildren = new Set<ChildProcess>();
export const liveDirs = new Set<string>();
let exitHookInstalled = false;
export function track(child: ChildProcess, dir?: string): void {
  liveChildren.add(child);
  if (dir) liveDirs.add(dir);
  child.once('exit', () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of liveChildren) {
        const guarded = guards.get(c);
        if (guarded) guarded.kill();
        else c.kill('SIGKILL');
      }
      for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
    });
  }
}
export function untrackDir(dir: string): void {
  liveDirs.delete(dir);
  rmSync(dir, { recursive: true, force: true });
}

export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Servers started under a guard (scripts/servers.ts spawnGuarded): they die with this process. */
const guards = new WeakMap<ChildProcess, GuardedProcess>();

/** `removeDir`: the guard deletes `cwd` once the server is gone (not for Connect, which restarts in it). */
export function spawnServer(program: string, args: readonly string[], cwd: string, removeDir = false): ChildProcess {
  const guarded = spawnGuarded(program, args, { stopSignal: 'TERM', cwd, ...(removeDir ? { dir: cwd } : {}) });
  guards.set(guarded.child, guarded);
  return guarded.child;
}

export function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 20_000): Promise<void> {
  if (exited(child)) return Promise.resolve();
  const guarded = guards.get(child);
  if (guarded) {
    if (signal !== 'SIGKILL') return guarded.stop(graceMs);
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    guarded.kill();
    return gone;
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The last `lines` lines of a text file ('' if it does not exist). */
export function tail(path: string, lines = 40): string {
  if (!existsSync(path)) return '';
  const size = statSync(path).size;
  const from = Math.max(0, size - 64 * 1024);
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(size - from);
    readSync(fd, buffer, 0, buffer.length, from);
    return buffer.toString('utf8').split('\n').slice(-lines).join('\n');
  } finally {
    closeSync(fd);
  }
}

/** Keeps the last lines a process printed, for error messages. */
export function captureOutput(child: ChildProcess, keep = 60): () => string {
  const lines: string[] = [];
  const add = (chunk: Buffer): void => {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (lines.length > keep) lines.splice(0, lines.length - keep);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => lines.join('\n');
}

export function findBinary(names: readonly string[], extraDirs: readonly string[] = []): string | null {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), ...extraDirs];
  for (const name of names) {
    for (const dir of dirs) {
      if (dir && existsSync(join(dir, name))) return join(dir, name);
    }
  }
  return null;
}

export function javaBinary(): string {
  // $JAVA_HOME, PATH, or the package manager's JDK (scripts/provision.ts); Java 17 or newer only.
  const found = locate('java')?.path;
  if (!found) {
    throw new MissingBinaryError(
      'java',
      `Kafka 4 and Debezium 3 need Java 17 or newer (\`npm test\` installs it when it may; by hand: ${fixFor('java')}), or set JAVA_HOME.`,
    );
  }
  return found;
}

/** Run a program to completion; reject with its output if it fails. */
export function run(
  program: string,
  args: readonly string[],
  options: { cwd?: string; what: string; hint: string; input?: string } = { what: program, hint: '' },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, {
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    track(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    if (options.input !== undefined) child.stdin?.end(options.input);
    child.once('error', (error) =>
      reject(
        new Error(
          `${options.what}: expected to run '${program}', but it failed to start (${error.message}). ${options.hint}`,
        ),
      ),
    );
    child.once('exit', (code, signal) => {
      if (code === 0) resolve(stdout);
      else {
        const output = `${stdout}\n${stderr}`.trim().split('\n').slice(-30).join('\n');
        reject(
          new Error(
            `${options.what}: expected '${program} ${args.join(' ')}' to exit with 0, but it ended with ${code ?? signal}.\n${output}\n${options.hint}`,
          ),
        );
      }
    });
  });
}

export function dirSize(path: string): number {
  let total = 0;
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, entry.name);
    total += entry.isDirectory() ? dirSize(p) : statSync(p).size;
  }
  return total;
}

export function properties(values: Readonly<Record<string, string | number | boolean>>): string {
  return `${Object.entries(values)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join('\n')}\n`;
}

/** A log4j2 configuration that writes everything at INFO to one file (appending across restarts). */
export function log4jConfig(file: string): string {
  return properties({
    status: 'warn',
    'appender.file.type': 'File',
    'appender.file.name': 'FILE',
    'appender.file.fileName': file,
    'appender.file.append': 'true',
    'appender.file.layout.type': 'PatternLayout',
    'appender.file.layout.pattern': '[%d] %p %m (%c)%n',
    'rootLogger.level': 'INFO',
    'rootLogger.appenderRef.file.ref': 'FILE',
    'logger.reflections.name': 'org.reflections',
    'logger.reflections.level': 'ERROR',
  });
}

export function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}
