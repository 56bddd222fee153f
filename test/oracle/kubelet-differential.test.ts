// The agent's kubelet config.json, read by the kubelet's own keyring (kubelet-oracle on
// k8s.io/kubernetes v1.34.4 pkg/credentialprovider), against what the same Secret yields as an
// imagePullSecret. For every image: the Secret's credentials come first, in the Secret's order,
// followed by exactly the foreign credentials the node had (minus the foreign entries the agent
// moved aside because they stood before its own); an image the Secret does not cover gets exactly
// what the node gave it before. The file always stays readable for the kubelet.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDockerConfig } from '../../src/sources/dockerconfig.ts';
import { skipWithout } from '../support/go-tools.ts';
import { b64, creds, entries, HostRoots, IMAGES } from '../support/kubelet-corpus.ts';
import { KubeletOracle } from '../support/oracle-client.ts';
import { MemoryHost, TARGETS } from '../support/plan-fixtures.ts';

const KUBELET = '/var/lib/kubelet/config.json';
const HOME_DOCKER = '/root/.docker/config.json';

let oracle: KubeletOracle;
const roots = new HostRoots();
const materialize = (files: Record<string, string>): string => roots.materialize(files);
beforeAll(() => {
  oracle = new KubeletOracle();
});
afterAll(() => {
  oracle?.close();
  roots.cleanup();
});

interface Case {
  readonly secret: Record<string, unknown>;
  /** The node before the agent: files by host path. */
  readonly before: Record<string, string>;
}

async function check({ secret, before }: Case): Promise<void> {
  const secretText = JSON.stringify({ auths: secret });
  const snap = parseDockerConfig(secretText, 'secret', 'config.json');
  const host = new MemoryHost({ '/var/lib/kubelet': 'dir', ...before });
  const p = host.converge({ credentials: [...snap.credentials], targets: TARGETS });

  const [asSecret, today, after] = await Promise.all([
    oracle.secret(secretText, IMAGES),
    oracle.node(materialize(before), IMAGES),
    oracle.node(materialize(host.listing()), IMAGES),
  ]);
  expect(asSecret.error).toBeNull();
  const refused = new Set(snap.errors.map((e) => e.code));
  // The agent refuses only keys no image can match (the kubelet would never use them either).
  expect([...refused].filter((c) => c !== 'NRC_E_REGISTRY_HOST_INVALID')).toEqual([]);
  if (snap.credentials.length > 0) expect(after.file).toBe(KUBELET);
  const record = host.record.jsonFiles[KUBELET];
  // What the agent took out of the file: entries under its own keys (replaced) and moved aside.
  const replaced = Object.values(record?.entries ?? {}).flatMap((e) => ('replaced' in e ? [e.replaced] : []));
  const movedAside = new Set([...Object.values(record?.displaced ?? {}), ...replaced].map((v) => {
    const e = v as { auth?: string; username?: string; Username?: string };
    return e.auth ? Buffer.from(e.auth.replace(/\n/g, ''), 'base64').toString().split(':')[0] : (e.username ?? e.Username);
  }));
  // Reported orders the agent cannot give in one file: a foreign key tried first, or docker.io
  // (written because a foreign *.io hides the fallback key) tried before a key like *.io/library.
  const shadowed = p.errors.some((e) => e.code === 'NRC_E_FOREIGN_ENTRY_SHADOWS' || e.code === 'NRC_E_HUB_ALIAS_REORDERS');
  const written = (host.json(KUBELET) as { auths?: Record<string, unknown> } | undefined)?.auths ?? {};
  const promoted = 'docker.io' in written && !snap.credentials.some((c) => c.key === 'docker.io') ? creds(asSecret.images['docker.io/nobody/none'] ?? []) : [];
  // Foreign entries under the Docker Hub fallback key (any spelling), by their user.
  const fallbackUsers = new Set<string>();
  for (const file of Object.values(before)) {
    for (const [k, v] of Object.entries((JSON.parse(file) as { auths: Record<string, { auth?: string; username?: string; Username?: string }> }).auths)) {
      if (!/^(https?:\/\/)?index\.docker\.io(\/v[12]\/?|\/)?$/.test(k)) continue;
      fallbackUsers.add(v.auth ? Buffer.from(v.auth.replace(/\n/g, ''), 'base64').toString().split(':')[0]! : (v.username ?? v.Username ?? ''));
    }
  }
  for (const image of IMAGES) {
    const ours = creds(asSecret.images[image] ?? []);
    const theirs = creds(today.images[image] ?? []).filter((c) => !movedAside.has(c.split(':')[0]));
    const got = creds(after.images[image] ?? []);
    if (ours.length === 0) {
      expect(got, `${image}: an image the Secret does not cover keeps what it had`).toEqual(creds(today.images[image] ?? []));
    } else if (shadowed) {
      expect(got.filter((c) => ours.includes(c)), `${image}: the Secret's credentials, in order`).toEqual(ours);
    } else {
      // As an imagePullSecret the node's own credentials would follow; in one file the kubelet
      // drops a foreign Docker Hub fallback once a key matched, so the tail may be shorter.
      expect(got.slice(0, ours.length), `${image}: the Secret's credentials first, in its order`).toEqual(ours);
      // With a broad foreign key (*.io) hiding the fallback key, the agent also writes the Secret's
      // Docker Hub credential as docker.io (planner: withHubPromoted): it may follow the Secret's own.
      const tail = got.slice(ours.length).filter((c) => !promoted.includes(c));
      expect(tail, `${image}: then only the node's own, in their order`).toEqual(theirs.filter((c) => tail.includes(c)));
      if (!theirs.some((c) => c.startsWith('f') && fallbackUsers.has(c.split(':')[0]!))) expect(tail).toEqual(theirs);
    }
  }
}

describe.skipIf(skipWithout(['kubelet-oracle']))('the kubelet reads what the Secret means (kubelet 1.34 keyring)', () => {
  it('for generated Secrets over a node with foreign entries (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(entries('s'), entries('f'), fc.nat(2), async (secret, foreign, where) => {
        // The foreign credentials sit in the kubelet's file, in the file it reads today, or nowhere.
        const before = where === 2 ? {} : { [where === 0 ? KUBELET : HOME_DOCKER]: JSON.stringify({ auths: foreign }) };
        await check({ secret, before });
      }),
      { numRuns: 400 },
    );
  });

  it.each([
    ['Docker Hub rotation over an existing docker.io entry', { 'https://index.docker.io/v1/': { auth: b64('new:hub') } }, { [KUBELET]: { 'docker.io': { auth: b64('old:hub') } } }],
    ['docker.io and the fallback key in one Secret', { 'docker.io': { auth: b64('d:1') }, 'https://index.docker.io/v1/': { auth: b64('i:2') } }, {}],
    ['registry-1.docker.io is not Docker Hub to the kubelet', { 'registry-1.docker.io': { auth: b64('r:1') } }, {}],
    ['ECR wildcard with an inner wildcard label', { '*.dkr.ecr.*.amazonaws.com': { auth: b64('AWS:tok') } }, { [KUBELET]: { '123456789012.dkr.ecr.us-east-1.amazonaws.com': { auth: b64('old:ecr') } } }],
    ['a path key with a trailing slash', { 'reg.example.com/team/': { auth: b64('t:1') } }, { [KUBELET]: { 'reg.example.com': { auth: b64('f:1') } } }],
    ['a foreign *.io over the fallback key and a key covering part of Docker Hub', { '*.io/library': { auth: b64('s0:p') }, 'index.docker.io': { auth: b64('s1:p') } }, { [KUBELET]: { '*.io': { auth: b64('f0:p') } } }],
    ['upper-case host', { 'Reg.Example.com': { auth: b64('u:1') } }, {}],
    ['another spelling of the same key on the node', { 'reg.example.com': { auth: b64('ours:1') } }, { [KUBELET]: { 'https://reg.example.com/v2/': { auth: b64('theirs:1') } } }],
  ])('%s', async (_name, secret, node) => {
    const before: Record<string, string> = {};
    for (const [path, auths] of Object.entries(node)) before[path] = JSON.stringify({ auths });
    await check({ secret, before });
  });

  it('keeps the file readable when a foreign entry would make the kubelet refuse it, and cleanup puts it back', async () => {
    const before = { [KUBELET]: JSON.stringify({ auths: { 'bad.example.org': { auth: b64('nocolon') }, 'other.example.org': { auth: b64('o:1') } } }) };
    const today = await oracle.node(materialize(before), ['other.example.org/x']);
    expect(today.file).toBeNull(); // the kubelet refuses the whole file today
    const host = new MemoryHost(before);
    host.converge({ credentials: [...parseDockerConfig(JSON.stringify({ auths: { 'reg.example.com': { auth: b64('u:p') } } }), 's').credentials] });
    const after = await oracle.node(materialize(host.listing()), ['reg.example.com/x', 'other.example.org/x']);
    expect(after.file).toBe(KUBELET);
    expect(creds(after.images['reg.example.com/x']!)).toEqual(['u:p']);
    expect(creds(after.images['other.example.org/x']!)).toEqual(['o:1']);
    host.converge({ cleanup: true });
    expect(host.text(KUBELET)).toBe(before[KUBELET]);
  });
});
