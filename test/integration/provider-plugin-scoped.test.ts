// The shipped plugin with service-account tokens (namespace scoping, issue 26): the request the
// kubelet sends with tokenAttributes carries the pod's token; the plugin answers with that
// namespace's file when the agent wrote one, and with the node-wide answer for anything else,
// never another namespace's. The real kubelet's side: test/node/scoped.test.ts.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PROVIDER_API_VERSION, renderProviderDigest, renderProviderResponse } from '../../src/plan/provider.ts';
import { SHIM } from '../support/provider-plugin.ts';

const dir = mkdtempSync(join(tmpdir(), 'nrc-plugin-scoped-'));
const state = join(dir, 'provider', 'response.json');
const nsdir = join(dir, 'provider', 'namespaces');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function serve(path: string, auth: Record<string, string>): void {
  const body = renderProviderResponse(new Map(Object.entries(auth).map(([k, u]) => [k, { username: u, password: `${u}-pw` }])));
  writeFileSync(path, body);
  writeFileSync(`${path}.sha256`, renderProviderDigest(path, body));
}
mkdirSync(nsdir, { recursive: true });
serve(state, { 'shared.example.com': 'wide' });
serve(join(nsdir, 'team-a.json'), { 'shared.example.com': 'wide', 'team.example.com': 'team-a' });

const b64url = (s: string): string => Buffer.from(s).toString('base64url');
/** A token shaped like the kubelet's (header.claims.signature); the plugin reads, never verifies, it. */
const token = (claims: unknown): string => `${b64url('{"alg":"RS256","kid":"k"}')}.${b64url(JSON.stringify(claims))}.c2lnbmF0dXJl`;
const saClaims = (ns: string): unknown => ({
  aud: ['registry-credentials.okteto.com'],
  'kubernetes.io': { namespace: ns, node: { name: 'n', uid: 'u' }, pod: { name: 'p', uid: 'u' }, serviceaccount: { name: 'default', uid: 'u' } },
  sub: `system:serviceaccount:${ns}:default`,
});

/** The plugin's answer (auth usernames by key) and stderr, for a request as the kubelet's encoder writes it. */
function ask(saToken?: string): { users: Record<string, string>; stderr: string } {
  const request = { kind: 'CredentialProviderRequest', apiVersion: PROVIDER_API_VERSION, image: 'team.example.com/app:1', ...(saToken === undefined ? {} : { serviceAccountToken: saToken, serviceAccountAnnotations: {} }) };
  const r = spawnSync('sh', [SHIM], { input: JSON.stringify(request), env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NRC_PROVIDER_STATE: state }, encoding: 'utf8' });
  expect(r.status).toBe(0);
  const auth = (JSON.parse(r.stdout) as { auth: Record<string, { username: string }> }).auth;
  return { users: Object.fromEntries(Object.entries(auth).map(([k, v]) => [k, v.username])), stderr: r.stderr };
}

describe('the plugin with service-account tokens', () => {
  it("answers a pod of a namespace with a scoped answer with that namespace's file", () => {
    expect(ask(token(saClaims('team-a')))).toEqual({ users: { 'shared.example.com': 'wide', 'team.example.com': 'team-a' }, stderr: '' });
  });

  it('answers with the node-wide answer: no token (static pods), another namespace, a token it cannot read', () => {
    const wide = { users: { 'shared.example.com': 'wide' }, stderr: '' };
    expect(ask()).toEqual(wide);
    expect(ask(token(saClaims('team-b')))).toEqual(wide);
    expect(ask('not-a-jwt')).toEqual(wide);
    expect(ask(token({ sub: 'system:serviceaccount:../team-a:default' }))).toEqual(wide);
    expect(ask(token({ sub: 'system:node:n' }))).toEqual(wide);
  });

  it("never serves a namespace file that is a symbolic link (an empty answer, with the code), not even another's", () => {
    symlinkSync(join(nsdir, 'team-a.json'), join(nsdir, 'team-l.json'));
    const r = ask(token(saClaims('team-l')));
    expect(r.users).toEqual({});
    expect(r.stderr).toContain('NRC_E_PROVIDER_STATE_UNSAFE');
  });
});
