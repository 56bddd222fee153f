// The credential check against a Bearer-token registry flow served locally (node:https with a
// private CA made here): a /v2/ that challenges with `Bearer realm=…,service=…`, a token service
// that checks Basic credentials, and a /v2/ that accepts only the tokens it issued.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CredentialChecker, type CheckResult } from '../../src/check/credential-check.ts';
import { checkErrors, dropRejected } from '../../src/check/policy.ts';
import type { RegistryCredential } from '../../src/model/credential.ts';
import { DOCKER_HUB_HOST, DOCKER_HUB_KEY } from '../../src/model/registry-key.ts';
import type { HostOptions } from '../../src/model/host-options.ts';
import { makePki, type Pki } from '../support/e2e-pki.ts';

const USER = 'robot';
const PASSWORD = 'right-Pa55word-xyz';

interface Seen {
  path: string;
  auth: string;
}

let dir: string;
let pki: Pki;
let server: Server;
let host: string;
let realmOverride: string | undefined;
/** When set, /v2/ refuses every token (a token service and registry out of step). */
let refuseTokens = false;
const issued = new Set<string>();
const seen: Seen[] = [];

function cred(password: string, over: Partial<RegistryCredential> = {}): RegistryCredential {
  return { key: host, host, username: USER, password, source: 'test', ...over };
}

const options = (o: Partial<HostOptions> = {}): HostOptions => ({ host, ca: pki.caPem, skipVerify: false, authHeader: false, ...o });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nrc-check-bearer-'));
  pki = await makePki(dir);
  const [key, cert] = await Promise.all([readFile(pki.serverKeyPath), readFile(pki.serverCertPath)]);
  server = createServer({ key, cert }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://x');
    const auth = req.headers.authorization ?? '';
    seen.push({ path: `${url.pathname}${url.search}`, auth: auth.split(' ')[0] ?? '' });
    if (url.pathname === '/token') {
      const expected = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
      if (auth !== expected || url.searchParams.get('service') !== 'test-registry') {
        res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"details":"incorrect username or password"}');
        return;
      }
      const token = randomBytes(16).toString('hex');
      issued.add(token);
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
      return;
    }
    if (url.pathname === '/v2/') {
      const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
      if (!refuseTokens && issued.has(token)) {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
        return;
      }
      const realm = realmOverride ?? `https://${host}/token`;
      res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="${realm}",service="test-registry"`, 'Content-Type': 'application/json' }).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

function expectNoSecret(r: CheckResult | unknown, ...secrets: string[]): void {
  const text = JSON.stringify(r);
  for (const s of secrets) {
    expect(text).not.toContain(s);
    expect(text).not.toContain(Buffer.from(`${USER}:${s}`).toString('base64'));
  }
}

describe('credential check, Bearer token flow', () => {
  test('a right password is valid: challenge, token from the realm with Basic, retry with the token', async () => {
    seen.length = 0;
    const r = await new CredentialChecker().check(cred(PASSWORD), options());
    expect(r).toMatchObject({ key: host, status: 'valid', scheme: 'bearer', cached: false });
    expect(seen).toEqual([
      { path: '/v2/', auth: '' },
      { path: '/token?service=test-registry', auth: 'Basic' },
      { path: '/v2/', auth: 'Bearer' },
    ]);
    expectNoSecret(r, PASSWORD);
  });

  test('a wrong password is rejected by the token service, and the error says so without the password', async () => {
    seen.length = 0;
    const r = await new CredentialChecker().check(cred('wrong-password-123'), options());
    expect(r.status).toBe('rejected');
    expect(r.detail).toMatch(/token service rejected the credential \(HTTP 401\)/);
    expect(seen.map((s) => s.path)).toEqual(['/v2/', '/token?service=test-registry']);
    const errors = checkErrors([r]);
    expect(errors.map((e) => e.code)).toEqual(['NRC_E_CREDENTIAL_REJECTED']);
    expect(errors[0]!.message).toContain(host);
    expectNoSecret([r, errors[0]!.message], 'wrong-password-123');
  });

  test('a missing password is rejected', async () => {
    const r = await new CredentialChecker().check(cred(''), options());
    expect(r.status).toBe('rejected');
  });

  test('a token the registry refuses is rejected', async () => {
    refuseTokens = true;
    try {
      const r = await new CredentialChecker().check(cred(PASSWORD), options());
      expect(r.status).toBe('rejected');
      expect(r.detail).toMatch(/refused the token/);
    } finally {
      refuseTokens = false;
    }
  });

  test("without the registry's CA the registry is unreachable (TLS), and no credential is sent", async () => {
    seen.length = 0;
    const r = await new CredentialChecker().check(cred(PASSWORD), options({ ca: undefined }) as HostOptions);
    expect(r.status).toBe('unreachable');
    expect(r.detail).toMatch(/Request failed: [A-Z_]+/);
    expect(seen).toEqual([]);
    expect(checkErrors([r]).map((e) => e.code)).toEqual(['NRC_E_CREDENTIAL_CHECK_FAILED']);
  });

  test('skip_verify from the registry config lets the check through without the CA', async () => {
    const { ca: _ca, ...noCa } = options({ skipVerify: true });
    const r = await new CredentialChecker().check(cred(PASSWORD), noCa);
    expect(r.status).toBe('valid');
  });

  test('a plain-http token realm never receives the credential', async () => {
    realmOverride = `http://${host}/token`;
    seen.length = 0;
    try {
      const r = await new CredentialChecker().check(cred(PASSWORD), options());
      expect(r.status).toBe('unreachable');
      expect(r.detail).toMatch(/not https/);
      expect(seen.map((s) => s.path)).toEqual(['/v2/']);
    } finally {
      realmOverride = undefined;
    }
  });

  test('a registry that does not answer in time is unreachable', async () => {
    const { createServer: createTcp } = await import('node:net');
    const silent = createTcp(() => undefined); // accepts, never answers the TLS handshake
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const silentHost = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      const r = await new CredentialChecker({ timeoutMs: 200 }).check({ ...cred(PASSWORD), key: silentHost, host: silentHost });
      expect(r).toMatchObject({ status: 'unreachable', detail: 'Request failed: timed out.' });
    } finally {
      silent.close();
    }
  });
});

describe('credential check limits', () => {
  test('per host: an unchanged credential gets the earlier result, a changed one waits for the limit to refill', async () => {
    let now = 1_000_000;
    const checker = new CredentialChecker({ clock: { now: () => now }, perHostBurst: 1, perHostIntervalMs: 60_000, reuseMs: 600_000 });
    seen.length = 0;
    const first = await checker.check(cred(PASSWORD), options());
    expect(first.status).toBe('valid');
    const again = await checker.check(cred(PASSWORD), options());
    expect(again).toMatchObject({ status: 'valid', cached: true });
    const rotated = await checker.check(cred('rotated-password-1'), options());
    expect(rotated).toMatchObject({ status: 'not-checked', reason: 'rate-limited' });
    expect(seen.filter((s) => s.path === '/v2/' && s.auth === '')).toHaveLength(1);
    now += 60_000;
    const later = await checker.check(cred('rotated-password-1'), options());
    expect(later).toMatchObject({ status: 'rejected', cached: false });
  });

  test('global: past the burst, other hosts are not checked until the limit refills', async () => {
    let now = 0;
    const checker = new CredentialChecker({ clock: { now: () => now }, globalBurst: 2, globalIntervalMs: 1000 });
    const other = (n: number): RegistryCredential => ({ ...cred(PASSWORD), key: `${host}/team${n}` });
    const results = await checker.checkAll([cred(PASSWORD), other(1), other(2)], new Map([[host, options()]]));
    expect(results.map((r) => r.status)).toEqual(['valid', 'valid', 'not-checked']);
    now += 1000;
    expect((await checker.check(other(2), options())).status).toBe('valid');
  });

  test('wildcard keys and identity tokens are reported as not checked, without a request', async () => {
    seen.length = 0;
    const checker = new CredentialChecker();
    const wildcard = await checker.check({ ...cred(PASSWORD), key: '*.example.com', host: '*.example.com' });
    const idToken = await checker.check({ ...cred(PASSWORD), identityToken: 'refresh-token-xyz' }, options());
    expect([wildcard.reason, idToken.reason]).toEqual(['wildcard-host', 'identity-token']);
    expect(seen).toEqual([]);
    expectNoSecret(idToken, 'refresh-token-xyz');
  });
});

describe('dropping a rejected Docker Hub credential', () => {
  const hub = (password: string): RegistryCredential => ({ key: DOCKER_HUB_KEY, host: DOCKER_HUB_HOST, username: USER, password, source: 'test' });

  test('Docker Hub (served here) rejecting its credential keeps it out of the plan only when the operator enabled it', async () => {
    // docker.io is reached at this server, as registry-1.docker.io would be.
    const checker = new CredentialChecker({ endpointFor: (h) => (h === DOCKER_HUB_HOST ? `https://${host}` : `https://${h}`) });
    const other = cred('whatever');
    const results = [await checker.check(hub('wrong-hub-password'), { ...options(), host: DOCKER_HUB_HOST })];
    expect(results[0]!.status).toBe('rejected');
    const rejectedOther: CheckResult = { key: other.key, host: other.host, status: 'rejected', detail: '', checkedAt: new Date(), cached: false };
    const all = [...results, rejectedOther];

    const off = dropRejected([hub('wrong-hub-password'), other], all, { dropRejectedDockerHub: false });
    expect(off.credentials.map((c) => c.key)).toEqual([DOCKER_HUB_KEY, host]);
    expect(off.dropped).toEqual([]);

    const on = dropRejected([hub('wrong-hub-password'), other], all, { dropRejectedDockerHub: true });
    expect(on.credentials.map((c) => c.key)).toEqual([host]); // other registries are written even when rejected
    expect(on.dropped.map((e) => [e.code, e.subject])).toEqual([['NRC_E_CREDENTIAL_DROPPED', DOCKER_HUB_KEY]]);
  });

  test('a Docker Hub credential that could not be checked is still written', () => {
    const unreachable: CheckResult = { key: DOCKER_HUB_KEY, host: DOCKER_HUB_HOST, status: 'unreachable', detail: '', checkedAt: new Date(), cached: false };
    const r = dropRejected([hub('pw')], [unreachable], { dropRejectedDockerHub: true });
    expect(r.credentials).toHaveLength(1);
  });
});
