// The corpus of the kubelet differential suites (test/oracle/kubelet-differential.test.ts,
// provider-differential.test.ts): registry keys in every spelling the kubelet reads alike, entry
// forms, the images looked up, and host roots materialized on disk for the kubelet oracle.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import type { KubeletCred } from './oracle-client.ts';

export const HOSTS = [
  'reg.example.com', 'reg.example.com:5000', 'Reg.Example.com', '*.example.com', 'reg-*.example.com', 'reg-a.example.com',
  '10.0.0.7:5000', '[fd00::1]:5000', 'docker.io', 'index.docker.io', 'registry-1.docker.io', '*.io', 'quay.io',
  '*.dkr.ecr.*.amazonaws.com', '123456789012.dkr.ecr.us-east-1.amazonaws.com', 'localhost:5000',
];
// Spellings of one path class: each class is one kubelet key, so a Secret never holds one key twice.
export const PATHS = [['', '/', '/v2/', '/v1/'], ['/team', '/v2/team', '/v1/team'], ['/team/'], ['/library'], ['/v2']];
export const SCHEMES = ['', 'https://', 'http://'];
export const IMAGES = [
  'nginx', 'library/nginx:1.27', 'docker.io/library/nginx', 'myorg/app', 'docker.io/myorg/app', 'index.docker.io/library/nginx',
  'registry-1.docker.io/library/nginx', 'reg.example.com/app', 'reg.example.com/team/app', 'reg.example.com/teamster/app',
  'reg.example.com/library/x@sha256:' + 'a'.repeat(64), 'reg.example.com:5000/app', 'reg.example.com:5000/team/x', 'Reg.Example.com/app',
  'reg-a.example.com/app', 'reg-b.example.com/team/app', 'a.example.com/app', '10.0.0.7:5000/app', '[fd00::1]:5000/app',
  'quay.io/org/app', '123456789012.dkr.ecr.us-east-1.amazonaws.com/app', 'localhost:5000/app', 'other.example.org/x',
  // Matched by nothing but a whole-Docker-Hub key: what the Secret gives Docker Hub at large.
  'docker.io/nobody/none',
];

export const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** Entry forms that all mean user:password to the kubelet. */
export function entryForm(user: string, password: string, form: number): Record<string, unknown> {
  const auth = b64(`${user}:${password}`);
  switch (form % 6) {
    case 0: return { auth };
    case 1: return { auth: auth.replace(/=+$/, '') };
    case 2: return { auth: auth.length > 4 ? `${auth.slice(0, 4)}\n${auth.slice(4)}` : auth };
    case 3: return { username: user, password };
    case 4: return { Username: user, PASSWORD: password, email: 'x@example.com' };
    default: return { auth, username: 'ignored', password: 'ignored' };
  }
}

/** Entries over distinct (host, path class) pairs, each with its own user so credentials tell where they come from. */
export const entries = (tag: string, hosts: readonly string[] = HOSTS) =>
  fc.uniqueArray(fc.tuple(fc.nat(hosts.length - 1), fc.nat(PATHS.length - 1), fc.nat(10), fc.nat(2), fc.nat(5), fc.constantFrom('p', 'pa:ss', 'p=w', 'pässwörd')), {
    selector: ([h, p]) => `${h}/${p}`,
    maxLength: 5,
  }).map((list) => {
    const auths: Record<string, unknown> = {};
    list.forEach(([h, p, spelling, scheme, form, password], i) => {
      const paths = PATHS[p]!;
      auths[`${SCHEMES[scheme]}${hosts[h]}${paths[spelling % paths.length]}`] = entryForm(`${tag}${i}`, password, form);
    });
    return auths;
  });

export const creds = (list: readonly KubeletCred[]): string[] => list.map((c) => `${c.username}:${c.password}`);

/** Host roots on disk (path → content), removed by cleanup(). */
export class HostRoots {
  private readonly roots: string[] = [];

  materialize(files: Record<string, string>): string {
    const root = mkdtempSync(join(tmpdir(), 'nrc-kubelet-'));
    this.roots.push(root);
    mkdirSync(join(root, 'var/lib/kubelet'), { recursive: true });
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    return root;
  }

  cleanup(): void {
    for (const r of this.roots.splice(0)) rmSync(r, { recursive: true, force: true });
  }
}
