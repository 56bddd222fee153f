// Namespace-scoped registries on the node (issue 26): a scoped credential reaches only the answer
// of its namespaces, never config.json, the host config.json, hosts.toml or the node-wide answer;
// a node that cannot serve it refuses it with a code. The real kubelet's side: test/node/scoped.test.ts.
import { describe, expect, it } from 'vitest';
import type { RegistryCredential } from '../../src/model/credential.ts';
import { PROVIDER_NAMESPACES_DIR, PROVIDER_RESPONSE_PATH } from '../../src/model/state-paths.ts';
import { mergeSnapshots } from '../../src/reconcile/engine.ts';
import { secretToSnapshot } from '../../src/sources/kubernetes/secret-source.ts';
import { kubeletScopingRefusal } from '../../src/runtime/targets.ts';
import { renderScoped, SCOPED_DATA_KEY, SCOPES_ANNOTATION } from '../../src/model/scope.ts';
import { b64, cred, MemoryHost, options, PROVIDER_TARGETS, TARGETS } from '../support/plan-fixtures.ts';

const SCOPED_TARGETS = { ...PROVIDER_TARGETS, providerNamespacesDir: PROVIDER_NAMESPACES_DIR };
const answer = (host: MemoryHost, path: string): Record<string, { username: string; password: string }> | undefined =>
  (host.json(path) as { auth: Record<string, { username: string; password: string }> } | undefined)?.auth;
const nsPath = (ns: string): string => `${PROVIDER_NAMESPACES_DIR}/${ns}.json`;
const scoped = (c: RegistryCredential, namespaces: string[]): RegistryCredential => ({ ...c, namespaces, source: 'secret:okteto/broker registry:okteto/team-a' });

/** Every file of the host, concatenated: what a grep of the node would see. */
const everything = (host: MemoryHost, except: (path: string) => boolean = () => false): string =>
  Object.entries(host.listing())
    .filter(([p]) => !except(p))
    .map(([p, t]) => `${p}\n${t}`)
    .join('\n');

describe('planner, namespace scoping', () => {
  it('serves a scoped credential only in the answers of its namespaces, beside the node-wide ones', () => {
    const host = new MemoryHost({});
    const p = host.converge({
      credentials: [cred('shared.example.com', 'all', 'all-pass'), scoped(cred('team.example.com:5000', 'a', 'SCOPED-SECRET-A'), ['team-a', 'team-c'])],
      hostOptions: [options('team.example.com:5000', { ca: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n' })],
      targets: SCOPED_TARGETS,
    });
    expect(p.errors).toEqual([]);
    expect(answer(host, PROVIDER_RESPONSE_PATH)).toEqual({ 'shared.example.com': { username: 'all', password: 'all-pass' } });
    for (const ns of ['team-a', 'team-c']) {
      expect(answer(host, nsPath(ns))).toEqual({ 'shared.example.com': { username: 'all', password: 'all-pass' }, 'team.example.com:5000': { username: 'a', password: 'SCOPED-SECRET-A' } });
    }
    expect(answer(host, nsPath('team-b'))).toBeUndefined();
    // The grep of the issue: nowhere else on the node (the CA of its hosts.toml is still written).
    expect(everything(host, (path) => path.startsWith(`${PROVIDER_NAMESPACES_DIR}/`))).not.toContain('SCOPED-SECRET-A');
    expect(everything(host, (path) => path.startsWith(`${PROVIDER_NAMESPACES_DIR}/`))).not.toContain(b64('a:SCOPED-SECRET-A'));
    expect(Object.keys(host.listing()).some((path) => path.endsWith('team.example.com:5000/hosts.toml'))).toBe(true);
  });

  it('narrowing removes the answer of a namespace; cleanup leaves nothing', () => {
    const host = new MemoryHost({});
    const a = scoped(cred('team.example.com', 'a', 'pw'), ['team-a', 'team-b']);
    host.converge({ credentials: [a], targets: SCOPED_TARGETS });
    expect(answer(host, nsPath('team-b'))).toBeDefined();
    host.converge({ credentials: [{ ...a, namespaces: ['team-a'] }], targets: SCOPED_TARGETS });
    expect(answer(host, nsPath('team-b'))).toBeUndefined();
    expect(host.listing()[`${nsPath('team-b')}.sha256`]).toBeUndefined();
    expect(answer(host, nsPath('team-a'))).toEqual({ 'team.example.com': { username: 'a', password: 'pw' } });
    host.converge({ cleanup: true, targets: SCOPED_TARGETS });
    expect(host.listing()).toEqual({});
  });

  it('the first scoped credential of a key wins in a namespace, and replaces the node-wide one there only', () => {
    const host = new MemoryHost({});
    host.converge({
      credentials: [cred('reg.example.com', 'wide', 'w'), scoped(cred('reg.example.com', 'first', '1'), ['team-a']), scoped(cred('reg.example.com', 'second', '2'), ['team-a', 'team-b'])],
      targets: SCOPED_TARGETS,
    });
    expect(answer(host, PROVIDER_RESPONSE_PATH)).toEqual({ 'reg.example.com': { username: 'wide', password: 'w' } });
    expect(answer(host, nsPath('team-a'))).toEqual({ 'reg.example.com': { username: 'first', password: '1' } });
    expect(answer(host, nsPath('team-b'))).toEqual({ 'reg.example.com': { username: 'second', password: '2' } });
  });

  for (const [what, targets, refusal] of [
    ['config.json mode', TARGETS, 'namespace scoping needs --kubelet-credentials provider'],
    ['provider mode without scoping', { ...PROVIDER_TARGETS, scopedRefusal: 'kubelet v1.34.4 is older than 1.35' }, 'kubelet v1.34.4 is older than 1.35'],
  ] as const) {
    it(`${what}: refuses a scoped credential with NRC_E_SCOPE_UNSUPPORTED and writes it nowhere`, () => {
      const host = new MemoryHost({});
      const p = host.converge({ credentials: [cred('shared.example.com', 'all', 'x'), scoped(cred('team.example.com', 'a', 'SCOPED-SECRET-A'), ['team-a'])], targets: { ...targets, scopedRefusal: refusal } });
      expect(p.errors.map((e) => [e.code, e.subject])).toEqual([['NRC_E_SCOPE_UNSUPPORTED', 'secret:okteto/broker registry:okteto/team-a "team.example.com"']]);
      expect(p.errors[0]!.message).toContain(refusal);
      // config.json holds base64 of user:password, the answers the password itself.
      expect(everything(host)).not.toContain('SCOPED-SECRET-A');
      expect(everything(host)).not.toContain(b64('a:SCOPED-SECRET-A'));
      expect(everything(host)).toContain('shared.example.com');
    });
  }
});

describe('sources and merge, namespace scoping', () => {
  const secret = (auths: Record<string, unknown>, annotations: Record<string, string> = {}, extra: Record<string, string> = {}): Parameters<typeof secretToSnapshot>[0] =>
    ({
      metadata: { name: 's', namespace: 'okteto', annotations },
      data: { '.dockerconfigjson': b64(JSON.stringify({ auths })), ...extra },
    }) as Parameters<typeof secretToSnapshot>[0];

  it("the static Secret's scopes annotation scopes its entries; an unreadable scope withholds the entry, never widens it", () => {
    const snap = secretToSnapshot(
      secret(
        { 'https://team.example.com': { auth: b64('a:1') }, 'bad.example.com': { auth: b64('b:2') }, 'wide.example.com': { auth: b64('w:3') } },
        { [SCOPES_ANNOTATION]: JSON.stringify({ 'https://team.example.com': { namespaces: ['team-a'], namespaceSelector: 'team=a' }, 'bad.example.com': { namespaces: ['Not_A_Namespace'] } }) },
      ),
      'secret:okteto/okteto-dockerconfig-static',
    );
    const byKey = Object.fromEntries(snap.credentials.map((c) => [c.key, c]));
    expect(byKey['team.example.com']).toMatchObject({ namespaces: ['team-a'], namespaceSelector: 'team=a' });
    expect(byKey['bad.example.com']).toMatchObject({ namespaces: [] });
    expect(byKey['wide.example.com']!.namespaces).toBeUndefined();
    expect(snap.errors.map((e) => e.code)).toEqual(['NRC_E_SCOPE_INVALID']);
    // An annotation that is not JSON at all: every entry is withheld.
    const all = secretToSnapshot(secret({ 'wide.example.com': { auth: b64('w:3') } }, { [SCOPES_ANNOTATION]: '{nope' }), 'secret:okteto/s');
    expect(all.credentials.map((c) => c.namespaces)).toEqual([[]]);
  });

  it("the broker's scoped.json gives scoped credentials and resolved selectors; the merge resolves the static Secret's selector with them", () => {
    const broker = secretToSnapshot(
      secret({ 'wide.example.com': { auth: b64('w:1') } }, {}, {
        [SCOPED_DATA_KEY]: b64(renderScoped({ entries: [{ key: 'team.example.com', username: 'a', password: 'p', namespaces: ['team-a'], source: 'registry:okteto/team-a' }], selectors: { 'team=a': ['team-a', 'team-x'] } })),
      }),
      'secret:okteto/broker',
    );
    expect(broker.selectors).toEqual({ 'team=a': ['team-a', 'team-x'] });
    const statik = secretToSnapshot(
      secret({ 'static.example.com': { auth: b64('s:2') } }, { [SCOPES_ANNOTATION]: JSON.stringify({ 'static.example.com': { namespaces: ['team-z'], namespaceSelector: 'team=a' } }) }),
      'secret:okteto/okteto-dockerconfig-static',
    );
    const merged = mergeSnapshots([broker, statik]);
    expect(merged.credentials.map((c) => [c.key, c.namespaces])).toEqual([
      ['wide.example.com', undefined],
      ['team.example.com', ['team-a']],
      ['static.example.com', ['team-a', 'team-x', 'team-z']],
    ]);
    // Without the broker's resolution the selector adds nothing: fail closed.
    expect(mergeSnapshots([statik]).credentials.map((c) => c.namespaces)).toEqual([['team-z']]);
  });
});

describe('kubeletScopingRefusal: which kubelets can hold a scope (the Node\'s status.nodeInfo.kubeletVersion)', () => {
  it('serves on 1.35 and later, refuses older ones and a version it cannot read', () => {
    for (const v of ['v1.35.0', 'v1.37.2', 'v1.40.0-alpha.1', 'v2.0.0']) expect(kubeletScopingRefusal(v), v).toBeUndefined();
    for (const v of ['v1.34.4', 'v1.33.9', 'v1.9.0']) expect(kubeletScopingRefusal(v), v).toContain('older than 1.35');
    for (const v of [undefined, '', 'garbage']) expect(kubeletScopingRefusal(v)).toContain('could not be read');
  });
});
