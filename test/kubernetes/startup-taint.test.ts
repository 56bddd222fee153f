// The startup taint (issue 22) on the real kube-apiserver: the admission policy
// node-registry-credentials-own-node (daemonset/base/admission-policy.yaml, installed with
// daemonset/ as shipped) lets the agent remove exactly that taint from its own Node, and nothing
// else of the taints: not add it, not touch another taint, not on another Node. Every refusal
// below is the policy's: RBAC alone (nodes patch) allows each request (shown once with the
// policy's taint rule taken out; see the issue 22 note). Then the agent's own reporter removes
// the taint once the configuration is effective, and only then.
import { readFile } from 'node:fs/promises';
import type { V1Taint } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_STARTUP_TAINT, type EffectiveState } from '../../src/report/node-annotations.ts';
import { NodeStatusReporter } from '../../src/report/node-status.ts';
import type { AgentError } from '../../src/errors.ts';
import { kubeConfigFor } from '../support/control-plane.ts';
import { Admin, controlPlane, patchNodeAs, waitFor } from './helpers.ts';

const info = controlPlane();
const OWN = 'taint-node-own';
const OTHER = 'taint-node-other';
const STARTUP: V1Taint = { key: DEFAULT_STARTUP_TAINT, effect: 'NoSchedule' };
const DEDICATED: V1Taint = { key: 'dedicated.example.com/gpu', value: 'true', effect: 'NoSchedule' };

describe.skipIf(!info)("the startup taint: the agent may remove exactly that one from its own Node (real API server)", () => {
  let admin: Admin;
  let token: string;
  let ca: Buffer;

  /** A PATCH of Node `name` as `bearer`, a JSON patch unless told: the HTTP status and message. */
  const patch = (bearer: string, name: string, body: unknown, type = 'application/json-patch+json'): Promise<{ status: number; message: string }> => patchNodeAs(info!, ca)(bearer, name, body, type);
  const taints = async (name: string): Promise<V1Taint[]> => (await admin.core.readNode({ name })).spec?.taints ?? [];
  const keys = async (name: string): Promise<string[]> => (await taints(name)).map((t) => `${t.key}:${t.effect}`).sort();
  /** Sets the Node's taints as an admin would (the API server's own not-ready taint kept). */
  const setTaints = async (name: string, add: V1Taint[]): Promise<void> => {
    const node = await admin.core.readNode({ name });
    const keep = (node.spec?.taints ?? []).filter((t) => t.key.startsWith('node.kubernetes.io/'));
    await admin.core.replaceNode({ name, body: { ...node, spec: { ...node.spec, taints: [...keep, ...add] } } });
  };
  const replaceTaints = (list: V1Taint[]): unknown => [{ op: 'replace', path: '/spec/taints', value: list }];

  beforeAll(async () => {
    admin = new Admin(info!);
    ca = await readFile(info!.caFile);
    for (const n of [OWN, OTHER]) {
      await admin.putNode(n);
      await setTaints(n, [STARTUP, DEDICATED]);
    }
    token = (await admin.agent({ onNode: OWN })).token;
  });
  afterAll(async () => {
    await admin.deleteTokenAnchors();
    for (const n of [OWN, OTHER]) await admin.deleteNode(n);
  });

  it('refuses every other taint change on its own Node, and the startup taint on another Node', async () => {
    const own = await taints(OWN);
    const other = await taints(OTHER);
    const without = (key: string): V1Taint[] => own.filter((t) => t.key !== key);
    const refused: [string, string, unknown, string][] = [
      ['removing another taint', OWN, replaceTaints(without(DEDICATED.key)), `may only remove the startup taint ${DEFAULT_STARTUP_TAINT}`],
      ['the startup taint and another one at once', OWN, replaceTaints(own.filter((t) => t.key !== DEDICATED.key && t.key !== STARTUP.key)), 'may only remove the startup taint'],
      ['changing another taint', OWN, replaceTaints(own.map((t) => (t.key === DEDICATED.key ? { ...t, value: 'false' } : t))), 'may only remove the startup taint'],
      ['adding a taint', OWN, replaceTaints([...own, { key: 'evil.example.com/x', effect: 'NoExecute' }]), 'may only remove the startup taint'],
      ['a second startup taint (NoExecute)', OWN, replaceTaints([...own, { ...STARTUP, effect: 'NoExecute' }]), 'may only remove the startup taint'],
      ['the startup taint turned into NoExecute', OWN, replaceTaints(own.map((t) => (t.key === STARTUP.key ? { ...t, effect: 'NoExecute' } : t))), 'may only remove the startup taint'],
      ['the startup taint with the rest of the spec', OWN, [...(replaceTaints(without(STARTUP.key)) as object[]), { op: 'add', path: '/spec/unschedulable', value: true }], "may not change a Node's spec"],
      ['the startup taint of another Node', OTHER, replaceTaints(other.filter((t) => t.key !== STARTUP.key)), 'may only change its own Node'],
    ];
    // The policy is loaded asynchronously after the install: wait for it to answer.
    await waitFor(async () => expect((await patch(token, OWN, refused[0]![2])).status).toBe(403)).catch(() => undefined);
    // Every case is tried and the ones let through are listed (without the policy: all of them).
    const through: string[] = [];
    for (const [what, node, body, message] of refused) {
      const r = await patch(token, node, body);
      if (r.status !== 403 || !r.message.includes(message)) through.push(`${what}: ${r.status} ${r.message.slice(0, 120)}`);
    }
    expect(through).toEqual([]);
    expect(await taints(OWN)).toEqual(own);
    expect(await keys(OTHER)).toContain(`${STARTUP.key}:NoSchedule`);
  });

  it('allows removing the startup taint from its own Node, leaving every other taint; then refuses adding it back', async () => {
    const own = await taints(OWN);
    expect((await patch(token, OWN, replaceTaints(own.filter((t) => t.key !== STARTUP.key)))).status).toBe(200);
    expect(await taints(OWN)).toEqual(own.filter((t) => t.key !== STARTUP.key));
    const back = await patch(token, OWN, replaceTaints(own));
    expect(back.status).toBe(403);
    expect(back.message).toContain('may only remove the startup taint');
    // A merge patch is held to the same rule.
    const merge = await patch(token, OWN, { spec: { taints: own } }, 'application/merge-patch+json');
    expect(merge.status).toBe(403);
  });

  it("the agent's reporter: keeps the taint while the configuration is pending, removes only it once effective, and leaves a Node without it alone", async () => {
    await setTaints(OWN, [STARTUP, DEDICATED]);
    const failures: AgentError[] = [];
    const outcomes: string[] = [];
    const reporter = new NodeStatusReporter({ kubeConfig: kubeConfigFor(info!, token), nodeName: OWN, startupTaint: DEFAULT_STARTUP_TAINT, onError: (e) => failures.push(e), onStartupTaint: (o) => outcomes.push(o) });
    const state = (s: EffectiveState['state']): EffectiveState => ({ state: s, at: new Date(), via: ['config.json'], how: 'cache-lifetime' });
    await reporter.reportApply({ hash: 'sha256:t', at: new Date(), errors: [], effective: state('pending') });
    expect(await keys(OWN)).toContain(`${STARTUP.key}:NoSchedule`);
    await reporter.reportEffective(state('effective'));
    expect(await keys(OWN)).not.toContain(`${STARTUP.key}:NoSchedule`);
    expect(await keys(OWN)).toContain(`${DEDICATED.key}:NoSchedule`);
    expect(outcomes).toEqual(['removed']);
    expect(failures).toEqual([]);
    reporter.stop();

    // A Node registered without the taint: nothing is sent but the annotations.
    const other = new NodeStatusReporter({ kubeConfig: kubeConfigFor(info!, token), nodeName: OWN, startupTaint: DEFAULT_STARTUP_TAINT, onError: (e) => failures.push(e), onStartupTaint: (o) => outcomes.push(o) });
    const before = await taints(OWN);
    await other.reportApply({ hash: 'sha256:u', at: new Date(), errors: [], effective: state('effective') });
    expect(await taints(OWN)).toEqual(before);
    expect(outcomes).toEqual(['removed', 'absent']);
    expect(failures).toEqual([]);
  });
});
