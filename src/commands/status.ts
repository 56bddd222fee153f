// `status`: the fleet view. Reads what every node's agent reported in its Node annotations
// (src/report/node-status.ts) and prints one line per node, marking the nodes that are behind
// (another configuration than the newest one, for longer than --behind-after) or failing.
// Annotations carry hashes, times, error codes and registry hosts only: nothing secret.
import { AgentError, ERROR_CODES } from '../errors.ts';
import { quoteSubject } from '../model/registry-key.ts';
import { DEFAULT_SECRET_NAMESPACE } from '../sources/kubernetes/defaults.ts';
import { loadKubeConfig } from '../sources/kubernetes/kubeconfig.ts';
import {
  ANNOTATION_AT,
  ANNOTATION_EFFECTIVE,
  ANNOTATION_ERRORS,
  ANNOTATION_HASH,
  ANNOTATION_PREFIX,
  ANNOTATION_PROVIDER_ASKED,
  ANNOTATION_TOKEN_EXPIRIES,
  type EffectiveState,
  parseEffective,
  parseProviderAsked,
  parseTokenExpiries,
  type ProviderAskedState,
} from '../report/node-annotations.ts';

export { ANNOTATION_TOKEN_EXPIRIES, formatTokenExpiries, parseTokenExpiries } from '../report/node-annotations.ts';
import { EXIT_FAILED, EXIT_OK, EXIT_REJECTED, type Io } from './oneshot.ts';
import { STATUS_FLAGS, str, withDefault, type Flags } from './options.ts';




/** ok · updating (on an older configuration, within --behind-after) · behind · failing · expiring · unreported. */
export type NodeState = 'ok' | 'updating' | 'behind' | 'failing' | 'expiring' | 'unreported';

export interface NodeStatus {
  readonly name: string;
  readonly state: NodeState;
  /** True for the states an operator must look at (behind, failing, expiring, unreported). */
  readonly attention: boolean;
  readonly hash?: string;
  readonly appliedAt?: string;
  readonly errors: readonly string[];
  readonly tokenExpiries: readonly { registry: string; expiresAt: string }[];
  /** Why the state, in words. */
  readonly notes: readonly string[];
  /**
   * Provider mode only (the agent's provider-asked annotation): whether the kubelet asks the
   * credential provider plugin, as the agent observed it on the node; `since` for asking, the last
   * request on record for stale. Not a state of its own: a node that pulled nothing yet is fine.
   */
  readonly providerAsked?: { readonly state: ProviderAskedState; readonly since?: string };
  /**
   * Whether the node's configuration is effective (its effective annotation): `at` is when it
   * became so, or (pending) when it will at the latest.
   */
  readonly effective?: { readonly state: EffectiveState['state']; readonly at: string; readonly via: readonly string[]; readonly how?: string };
}

export interface FleetStatus {
  /** The configuration of the node that applied last: what the others should converge to. */
  readonly newestHash?: string;
  readonly newestAppliedAt?: string;
  readonly nodes: readonly NodeStatus[];
  readonly counts: Readonly<Record<NodeState, number>>;
}

export interface NodeAnnotations {
  readonly name: string;
  readonly annotations: Readonly<Record<string, string>>;
}

const SEVERITY: Record<NodeState, number> = { ok: 0, updating: 1, expiring: 2, behind: 3, failing: 4, unreported: 5 };

/** Parses 90s, 10m, 2h (or plain seconds). */
export function parseDuration(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!m) return undefined;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

/** Pure: the fleet's state from the nodes' annotations at `now`. */
export function assessFleet(nodes: readonly NodeAnnotations[], now: Date, opts: { behindAfterMs: number; expiryWarningMs: number }): FleetStatus {
  const reported = nodes
    .map((n) => ({ n, hash: n.annotations[ANNOTATION_HASH], at: Date.parse(n.annotations[ANNOTATION_AT] ?? '') }))
    .filter((r) => r.hash);
  // Newest applied-at wins; without times, the most common hash.
  const byCount = new Map<string, number>();
  for (const r of reported) byCount.set(r.hash!, (byCount.get(r.hash!) ?? 0) + 1);
  const newest = [...reported].sort((a, b) => (Number.isNaN(b.at) ? -Infinity : b.at) - (Number.isNaN(a.at) ? -Infinity : a.at) || (byCount.get(b.hash!) ?? 0) - (byCount.get(a.hash!) ?? 0))[0];
  const newestHash = newest?.hash;
  const newestAt = newest && !Number.isNaN(newest.at) ? newest.at : undefined;

  const out: NodeStatus[] = [];
  for (const n of [...nodes].sort((a, b) => a.name.localeCompare(b.name))) {
    const a = n.annotations;
    const hash = a[ANNOTATION_HASH];
    const appliedAt = a[ANNOTATION_AT];
    const errors = (a[ANNOTATION_ERRORS] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    const expiries = parseTokenExpiries(a[ANNOTATION_TOKEN_EXPIRIES]);
    const notes: string[] = [];
    const asked = parseProviderAsked(a[ANNOTATION_PROVIDER_ASKED]);
    const effective = parseEffective(a[ANNOTATION_EFFECTIVE]);
    let state: NodeState = 'ok';
    const raise = (s: NodeState, note: string): void => {
      notes.push(note);
      if (SEVERITY[s] > SEVERITY[state]) state = s;
    };
    if (!hash) {
      raise('unreported', 'no report from the agent (not running on this node, or it cannot patch its Node)');
    } else if (newestHash !== undefined && hash !== newestHash) {
      const lag = newestAt !== undefined ? now.getTime() - newestAt : Infinity;
      if (lag > opts.behindAfterMs) raise('behind', `configuration ${hash} differs from the newest ${newestHash}, applied ${ago(lag)} ago`);
      else raise('updating', `configuration ${hash} differs from the newest ${newestHash} (applied ${ago(lag)} ago; still within --behind-after)`);
    }
    for (const code of errors) {
      const known = (ERROR_CODES as Record<string, unknown>)[code] !== undefined;
      raise('failing', known ? `${code} (see docs/errors.md)` : code);
    }
    for (const e of expiries) {
      const left = e.expiresAt.getTime() - now.getTime();
      if (left <= 0) raise('failing', `token for ${e.registry} expired ${ago(-left)} ago`);
      else if (left <= opts.expiryWarningMs) raise('expiring', `token for ${e.registry} expires in ${ago(left)}`);
    }
    out.push({
      name: n.name,
      state,
      attention: state !== 'ok' && state !== 'updating',
      ...(hash ? { hash } : {}),
      ...(appliedAt ? { appliedAt } : {}),
      errors,
      tokenExpiries: expiries.map((e) => ({ registry: e.registry, expiresAt: e.expiresAt.toISOString() })),
      notes,
      ...(asked ? { providerAsked: { state: asked.state, ...(asked.at ? { since: asked.at.toISOString() } : {}) } } : {}),
      ...(effective ? { effective: { state: effective.state, at: effective.at.toISOString(), via: effective.via, ...(effective.how ? { how: effective.how } : {}) } } : {}),
    });
  }
  const counts: Record<NodeState, number> = { ok: 0, updating: 0, behind: 0, failing: 0, expiring: 0, unreported: 0 };
  for (const n of out) counts[n.state]++;
  return {
    ...(newestHash ? { newestHash } : {}),
    ...(newestAt !== undefined ? { newestAppliedAt: new Date(newestAt).toISOString() } : {}),
    nodes: out,
    counts,
  };
}

/** Aligned columns, as kubectl prints them: each padded to its widest cell, the last one not padded. */
function table(header: readonly string[], rows: readonly string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: readonly string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join(' ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** The PROVIDER column: whether the kubelet asks the credential provider plugin (provider mode only). */
function providerCell(n: NodeStatus, now: Date): string {
  const p = n.providerAsked;
  if (!p) return '-';
  if (p.state === 'asking') return `asking (since ${p.since ? `${ago(now.getTime() - Date.parse(p.since))} ago` : '?'})`;
  if (p.state === 'stale') return `stale (last ${p.since ? `${ago(now.getTime() - Date.parse(p.since))} ago` : '?'})`;
  return 'not asked yet';
}

/** The EFFECTIVE column: written is not yet effective while the kubelet's config.json cache may hold the old file. */
function effectiveCell(n: NodeStatus, now: Date): string {
  const e = n.effective;
  if (!e) return '-';
  const via = e.via.join('+');
  const t = Date.parse(e.at) - now.getTime();
  if (e.state === 'effective') return `yes, ${ago(-t)} ago (${via}${e.how === 'kubelet-read' ? ', kubelet read it' : e.how === 'cache-lifetime' ? ', cache ran out' : ''})`;
  if (e.state === 'pending') return `pending, by ${t > 0 ? `${ago(t)} from now` : 'now'} (${via} cache)`;
  return `not written (${via})`;
}

export function formatFleet(fleet: FleetStatus, now: Date): string {
  // The PROVIDER column only when some node reports provider mode: config-json fleets look as before.
  const provider = fleet.nodes.some((n) => n.providerAsked);
  const effective = fleet.nodes.some((n) => n.effective);
  const rows = fleet.nodes.map((n) => {
    const at = n.appliedAt ? `${ago(now.getTime() - Date.parse(n.appliedAt))} ago` : '-';
    const tokens = n.tokenExpiries.length
      ? `${n.tokenExpiries.length} (next ${ago(Math.min(...n.tokenExpiries.map((t) => Date.parse(t.expiresAt))) - now.getTime())})`
      : '-';
    return [n.attention ? '!' : ' ', n.name, n.state, n.hash ?? '-', at, ...(effective ? [effectiveCell(n, now)] : []), n.errors.length ? n.errors.join(',') : '-', tokens, ...(provider ? [providerCell(n, now)] : [])];
  });
  const header = [' ', 'NODE', 'STATE', 'HASH', 'APPLIED', ...(effective ? ['EFFECTIVE'] : []), 'LAST ERRORS', 'TOKENS', ...(provider ? ['PROVIDER'] : [])];
  const c = fleet.counts;
  const attention = fleet.nodes.filter((n) => n.attention);
  const summary = [
    `${fleet.nodes.length} node(s): ${c.ok} in step${fleet.newestHash ? ` (newest configuration ${fleet.newestHash})` : ''}`,
    c.updating ? `${c.updating} updating` : '',
    c.behind ? `${c.behind} behind` : '',
    c.failing ? `${c.failing} failing` : '',
    c.expiring ? `${c.expiring} with expiring tokens` : '',
    c.unreported ? `${c.unreported} not reporting` : '',
  ].filter(Boolean).join(', ');
  const details = attention.flatMap((n) => n.notes.map((note) => `! ${n.name}: ${note}`));
  const reporting = fleet.nodes.filter((n) => n.effective);
  const effectiveNow = reporting.filter((n) => n.effective!.state === 'effective' || (n.effective!.state === 'pending' && Date.parse(n.effective!.at) <= now.getTime()));
  const effectiveLine = effective ? `effective on ${effectiveNow.length} of ${reporting.length} reporting node(s)${effectiveNow.length < reporting.length ? ` (the others: pending behind the kubelet's 5-minute config.json cache, or not written)` : ''}\n` : '';
  const inProvider = fleet.nodes.filter((n) => n.providerAsked);
  const notAsking = inProvider.filter((n) => n.providerAsked!.state !== 'asking');
  const providerLine = provider
    ? `provider mode on ${inProvider.length} node(s): the kubelet asks the plugin on ${inProvider.length - notAsking.length}${notAsking.length ? `; not (yet) on ${notAsking.map((n) => n.name).join(', ')}: no pull since the agent began serving, or a kubelet without the plugin (run doctor on the node; docs/kubernetes.md#if-the-kubelet-does-not-ask-the-provider)` : ''}\n`
    : '';
  return `${table(header, rows)}\n\n${summary}\n${effectiveLine}${providerLine}${details.length ? `${details.join('\n')}\n` : ''}`;
}

/** A duration flag (its default from STATUS_FLAGS when not given); a malformed one is NRC_E_FLAG_INVALID. */
function durationFlag(name: string, value: string | undefined): number | AgentError {
  const text = withDefault(STATUS_FLAGS, name, value) ?? '';
  const ms = parseDuration(text);
  return ms ?? new AgentError('NRC_E_FLAG_INVALID', { subject: `--${name}`, detail: `(got ${quoteSubject(text)}; --behind-after and --expiry-warning take a duration such as 90s, 10m or 2h)` });
}

/** One Registry as its status shows it (the broker leader's part: docs/kubernetes.md "Registry status"). */
export interface RegistryView {
  readonly name: string;
  readonly type?: string;
  readonly host?: string;
  /** The Resolved condition: True, False, Unknown; absent when the broker has not reported yet. */
  readonly resolved?: string;
  /** Its reason: an NRC_E_ code when False. */
  readonly reason?: string;
  readonly effective?: string;
  readonly effectiveReason?: string;
  readonly expiresAt?: string;
  readonly lastRefreshTime?: string;
  /** `****` and the last 4 characters of the password or token (as the platform's dashboard shows it). */
  readonly hint?: string;
  readonly attention: boolean;
}

interface RegistryObject {
  readonly metadata?: { readonly name?: string };
  readonly status?: {
    readonly conditions?: readonly { type?: string; status?: string; reason?: string }[];
    readonly nodeCredentials?: { type?: string; host?: string; effective?: string; expiresAt?: string; lastRefreshTime?: string; hint?: string };
  };
}

/** Pure: each Registry's view from its status. */
export function assessRegistries(items: readonly RegistryObject[]): RegistryView[] {
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  return [...items]
    .map((o) => {
      const conditions = Array.isArray(o.status?.conditions) ? o.status.conditions : [];
      const resolved = conditions.find((c) => c?.type === 'Resolved');
      const effective = conditions.find((c) => c?.type === 'Effective');
      const f = typeof o.status?.nodeCredentials === 'object' && o.status.nodeCredentials !== null ? o.status.nodeCredentials : {};
      const pick = { type: str(f.type), host: str(f.host), resolved: str(resolved?.status), reason: str(resolved?.reason), effective: str(f.effective), effectiveReason: str(effective?.reason), expiresAt: str(f.expiresAt), lastRefreshTime: str(f.lastRefreshTime), hint: str(f.hint) };
      const view: RegistryView = { name: o.metadata?.name ?? '?', ...Object.fromEntries(Object.entries(pick).filter(([, v]) => v !== undefined)), attention: resolved?.status !== 'True' };
      return view;
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

export function formatRegistries(views: readonly RegistryView[], now: Date): string {
  if (views.length === 0) return 'no Registry resources\n';
  const header = [' ', 'REGISTRY', 'TYPE', 'HOST', 'RESOLVED', 'EFFECTIVE', 'EXPIRES', 'REFRESHED', 'HINT'];
  const rows = views.map((v) => {
    const resolved = v.resolved === undefined ? 'not reported (is the broker running?)' : v.resolved === 'True' ? 'True' : `${v.resolved} (${v.reason ?? '?'})`;
    const expires = v.expiresAt ? (Date.parse(v.expiresAt) > now.getTime() ? `in ${ago(Date.parse(v.expiresAt) - now.getTime())}` : `${ago(now.getTime() - Date.parse(v.expiresAt))} ago`) : '-';
    const refreshed = v.lastRefreshTime ? `${ago(now.getTime() - Date.parse(v.lastRefreshTime))} ago` : '-';
    return [v.attention ? '!' : ' ', v.name, v.type ?? '-', v.host ?? '-', resolved, v.effective ?? '-', expires, refreshed, v.hint ?? '-'];
  });
  return `${table(header, rows)}\n`;
}

/** The Registry resources' status, or why they cannot be read (a note: the node view stands on its own). */
async function readRegistries(kubeconfig: string | undefined, namespace: string): Promise<RegistryView[] | string> {
  try {
    const { CustomObjectsApi } = await import('@kubernetes/client-node');
    const api = (await loadKubeConfig(kubeconfig)).makeApiClient(CustomObjectsApi);
    const list = (await api.listNamespacedCustomObject({ group: 'admin.okteto.com', version: 'v1', namespace, plural: 'registries' })) as { items?: RegistryObject[] };
    return assessRegistries(list.items ?? []);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return code === 403
      ? `registries in ${namespace}: not readable with this kubeconfig (403: needs registries list in ${namespace})`
      : code === 404
        ? `registries in ${namespace}: the Registry CRD (registries.admin.okteto.com) is not installed`
        : `registries in ${namespace}: not readable${typeof code === 'number' ? ` (HTTP ${code})` : ''}`;
  }
}

export async function statusCommand(f: Flags, io: Io, now: () => Date = () => new Date()): Promise<number> {
  const behindAfterMs = durationFlag('behind-after', str(f, 'behind-after'));
  const expiryWarningMs = durationFlag('expiry-warning', str(f, 'expiry-warning'));
  if (behindAfterMs instanceof AgentError || expiryWarningMs instanceof AgentError) {
    io.err(`${(behindAfterMs instanceof AgentError ? behindAfterMs : (expiryWarningMs as AgentError)).message}\n`);
    return EXIT_FAILED;
  }
  let nodes: NodeAnnotations[];
  try {
    const { CoreV1Api } = await import('@kubernetes/client-node');
    // The Kubernetes client is loaded when status runs, not when cli.ts imports this module (issue 7).
    const core = (await loadKubeConfig(str(f, 'kubeconfig'))).makeApiClient(CoreV1Api);
    const list = await core.listNode();
    nodes = list.items.map((n) => ({ name: n.metadata?.name ?? '?', annotations: n.metadata?.annotations ?? {} }));
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const e =
      code === 403
        ? new AgentError('NRC_E_K8S_FORBIDDEN', { detail: '(status needs "list nodes": a ClusterRole with nodes list, e.g. the view role does not include it)' })
        : new AgentError('NRC_E_K8S_UNAVAILABLE', { detail: typeof code === 'number' ? `(HTTP ${code})` : typeof code === 'string' ? `(${code})` : '' });
    io.err(`${e.message}\n`);
    return EXIT_FAILED;
  }
  const at = now();
  const fleet = assessFleet(nodes, at, { behindAfterMs, expiryWarningMs });
  // Beside the nodes: each Registry as the broker leader reports it (Resolved, Effective "n/total").
  const registries = await readRegistries(str(f, 'kubeconfig'), process.env['NRC_NAMESPACE'] || DEFAULT_SECRET_NAMESPACE);
  if (str(f, 'output') === 'json') {
    const extra = typeof registries === 'string' ? { registriesNote: registries } : { registries };
    io.out(`${JSON.stringify({ at: at.toISOString(), ...fleet, ...extra }, null, 2)}\n`);
  } else io.out(`${formatFleet(fleet, at)}\n${typeof registries === 'string' ? `${registries}\n` : formatRegistries(registries, at)}`);
  return fleet.nodes.some((n) => n.attention) ? EXIT_REJECTED : EXIT_OK;
}
