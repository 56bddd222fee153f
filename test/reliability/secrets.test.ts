// Secrets stay secret: every command of the real CLI (apply, render, cleanup, doctor, run at
// debug level), on success and on every error path, is run with known secrets in valid and
// rejected entries; nothing it prints (stdout, stderr, JSON logs) contains a password, a token,
// an `auth` value or the Basic header value.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeAuth } from '../../src/model/basic-auth.ts';
import { expectNoSecrets, makeSampleHost, registryToml, runCli, spawnCli, waitFor, type SampleHost } from '../support/reliability-host.ts';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const SECRET = {
  password: 'sek-password-Vn41Qz',
  token: 'sek-identity-token-Lp09Xc',
  hub: 'sek-hub-pat-Ty62Mb',
  rejectedNoColon: 'sek-nocolon-Gh17Ws',
  rejectedCtrl: 'sek-ctrl-Bb83Nq',
  rejectedDup: 'sek-dup-Kk55Ee',
  rejectedHost: 'sek-badhost-Ff20Rr',
  bigPrefix: 'sek-big-Qq12',
};
const AUTHS = {
  // Two keys for one registry: the first in sorted order (the https:// one) wins.
  'https://reg.example.com:5000': { auth: encodeAuth('alice', SECRET.password) },
  'reg.example.com:5000': { auth: encodeAuth('alice', SECRET.rejectedDup) },
  'token.example.com': { identitytoken: SECRET.token },
  'https://index.docker.io/v1/': { username: 'bob', password: SECRET.hub },
  'nocolon.example.com': { auth: b64(SECRET.rejectedNoColon) },
  'ctrl.example.com': { username: 'u', password: `${SECRET.rejectedCtrl}\n` },
  // Keys are not secrets (errors quote them so operators can find the entry); the value is.
  '../../etc/passwd': { auth: encodeAuth('x', SECRET.rejectedHost) },
  'big.example.com': { username: 'u', password: `${SECRET.bigPrefix}${'z'.repeat(70_000)}` },
};
const FORMS = [
  ...Object.values(SECRET),
  encodeAuth('alice', SECRET.password),
  encodeAuth('alice', SECRET.rejectedDup),
  encodeAuth('bob', SECRET.hub),
  b64(SECRET.rejectedNoColon),
  encodeAuth('x', SECRET.rejectedHost),
];

describe('secrets never reach logs, errors or output', () => {
  let host: SampleHost;
  let flags: string[];
  const outputs: { what: string; text: string }[] = [];

  beforeAll(() => {
    host = makeSampleHost();
    const dockerconfig = path.join(host.inputs, 'config.json');
    const registryConfig = path.join(host.inputs, 'registry.toml');
    fs.writeFileSync(dockerconfig, JSON.stringify({ auths: AUTHS }));
    fs.writeFileSync(registryConfig, registryToml(['reg.example.com:5000']));
    flags = ['--host-root', host.root, '--dockerconfig', dockerconfig, '--registry-config', registryConfig, '--log-level', 'debug'];
  });
  afterAll(() => {
    host.remove();
  });

  it('render, apply (with rejected entries), doctor and cleanup print no secret', async () => {
    for (const [name, args] of [
      ['render', ['render', ...flags]],
      ['apply', ['apply', ...flags]],
      ['apply again', ['apply', ...flags]],
      ['render after apply', ['render', ...flags]],
      ['doctor', ['doctor', '--host-root', host.root, '--output', 'json']],
      ['doctor text', ['doctor', '--host-root', host.root]],
    ] as const) {
      const r = await runCli(args);
      outputs.push({ what: `${name} stdout`, text: r.stdout }, { what: `${name} stderr`, text: r.stderr });
      if (name === 'apply') {
        expect(r.code).toBe(2);
        for (const code of ['NRC_E_AUTH_NO_COLON', 'NRC_E_CONTROL_CHARACTERS', 'NRC_E_DUPLICATE_REGISTRY', 'NRC_E_REGISTRY_HOST_INVALID', 'NRC_E_FIELD_TOO_LARGE']) expect(r.stderr).toContain(code);
      }
    }
    // The secrets are really on the node (so the scan above could have found them).
    const hostsToml = fs.readFileSync(host.real('/etc/containerd/certs.d/reg.example.com:5000/hosts.toml'), 'utf8');
    expect(hostsToml).toContain(encodeAuth('alice', SECRET.password));
    expect(fs.readFileSync(host.real('/var/lib/kubelet/config.json'), 'utf8')).toContain(SECRET.token);
    for (const o of outputs) expectNoSecrets(o.text, FORMS, o.what);
  });

  it('run at debug level logs no secret, also while it repairs drift', async () => {
    const child = spawnCli(['run', ...flags, '--debounce-ms', '20']);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    try {
      await waitFor(() => out.includes('NRC_E_AUTH_NO_COLON'), 'the first apply is logged', 30_000);
      fs.unlinkSync(host.real('/var/lib/kubelet/config.json'));
      await waitFor(() => out.includes('changed by someone else') && fs.existsSync(host.real('/var/lib/kubelet/config.json')), 'drift repaired', 30_000);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expectNoSecrets(out, FORMS, 'run logs');
    const cleanup = await runCli(['cleanup', '--host-root', host.root, '--log-level', 'debug']);
    expect(cleanup.code).toBe(0);
    expectNoSecrets(cleanup.stdout + cleanup.stderr, FORMS, 'cleanup output');
  });
});
