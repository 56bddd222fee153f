// The Node annotations the agent writes (node-status.ts) and `status` reads. Kept apart from
// node-status.ts so that importing them does not load @kubernetes/client-node (issue 7).
import { collate } from '../model/collate.ts';

export const ANNOTATION_PREFIX = 'registry-credentials.okteto.com/';
export const ANNOTATION_HASH = `${ANNOTATION_PREFIX}applied-hash`;
export const ANNOTATION_AT = `${ANNOTATION_PREFIX}applied-at`;
export const ANNOTATION_ERRORS = `${ANNOTATION_PREFIX}last-errors`;

/** The startup taint node pools register nodes with (issue 22); the agent lifts it once effective. */
export const DEFAULT_STARTUP_TAINT = `${ANNOTATION_PREFIX}agent-not-ready`;

/**
 * Token expiries of the node's time-limited credentials (ECR): `host=ISO-8601` pairs, comma-separated,
 * sorted by host. Written by the node-status reporter with formatTokenExpiries().
 */
export const ANNOTATION_TOKEN_EXPIRIES = `${ANNOTATION_PREFIX}token-expiries`;

export function formatTokenExpiries(expiries: ReadonlyMap<string, Date>): string | null {
  if (expiries.size === 0) return null;
  return [...expiries].sort(([a], [b]) => collate(a, b)).map(([host, at]) => `${host}=${at.toISOString()}`).join(',');
}

export function parseTokenExpiries(value: string | undefined): { registry: string; expiresAt: Date }[] {
  if (!value) return [];
  const out: { registry: string; expiresAt: Date }[] = [];
  for (const part of value.split(',')) {
    const i = part.lastIndexOf('=');
    if (i <= 0) continue;
    const at = new Date(part.slice(i + 1).trim());
    if (!Number.isNaN(at.getTime())) out.push({ registry: part.slice(0, i).trim(), expiresAt: at });
  }
  return out;
}

/**
 * Provider mode only (absent otherwise): whether the kubelet asks the credential provider plugin,
 * as the agent observes it on the node (the mtime of PROVIDER_ASKED_PATH, which the plugin touches
 * at each request). One of `asking <ISO>` (the kubelet has asked since the agent began serving; the
 * time is the first such request the agent saw), `stale <ISO>` (the last request on record, older
 * than the agent's first provider write: none since), `not-asked-yet` (no request on record). It
 * changes only with the state, at most twice per agent start, never at each pull: the Node is
 * patched only when an annotation changes. See ProviderAskedTracker.
 */
export const ANNOTATION_PROVIDER_ASKED = `${ANNOTATION_PREFIX}provider-asked`;

export type ProviderAskedState = 'asking' | 'stale' | 'not-asked-yet';

export interface ProviderAsked {
  readonly state: ProviderAskedState;
  /** asking: the first request seen since the agent began serving; stale: the last request on record. */
  readonly at?: Date;
}

export function formatProviderAsked(p: ProviderAsked): string {
  return p.state === 'not-asked-yet' || p.at === undefined ? 'not-asked-yet' : `${p.state} ${p.at.toISOString()}`;
}

export function parseProviderAsked(value: string | undefined): ProviderAsked | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*(asking|stale|not-asked-yet)(?:\s+(\S+))?\s*$/.exec(value);
  if (!m) return undefined;
  const state = m[1] as ProviderAskedState;
  if (state === 'not-asked-yet') return { state };
  const at = new Date(m[2] ?? '');
  return Number.isNaN(at.getTime()) ? undefined : { state, at };
}

/**
 * Whether the node's current configuration is effective (issue 22): `<state> <ISO> <via> [<how>]`,
 * e.g. `effective 2026-12-06T04:00:01.000Z config.json+hosts.toml kubelet-read` or
 * `pending 2026-12-06T04:05:00.000Z config.json cache-lifetime`. state: effective (since the
 * time), pending (effective at the latest at the time), not-written (the last pass failed, at the
 * time). via: what carries the credentials to pulls. how: kubelet-read (the kubelet read
 * config.json after it was written), cache-lifetime (its 5-minute cache ran or runs out), at-write
 * (read at every pull: provider, hosts.toml). Written with applied-hash, so it is about that hash.
 */
export const ANNOTATION_EFFECTIVE = `${ANNOTATION_PREFIX}effective`;

export type EffectiveVia = 'provider' | 'config.json' | 'hosts.toml';
export type EffectiveHow = 'at-write' | 'kubelet-read' | 'cache-lifetime';

export interface EffectiveState {
  readonly state: 'effective' | 'pending' | 'not-written';
  readonly at: Date;
  readonly via: readonly EffectiveVia[];
  readonly how?: EffectiveHow;
}

export function formatEffective(e: EffectiveState): string {
  return [e.state, e.at.toISOString(), e.via.join('+'), ...(e.how ? [e.how] : [])].join(' ');
}

export function parseEffective(value: string | undefined): EffectiveState | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*(effective|pending|not-written)\s+(\S+)\s+([a-z.+]+)(?:\s+(at-write|kubelet-read|cache-lifetime))?\s*$/.exec(value);
  if (!m) return undefined;
  const at = new Date(m[2] ?? '');
  const via = (m[3] ?? '').split('+').filter((v): v is EffectiveVia => v === 'provider' || v === 'config.json' || v === 'hosts.toml');
  if (Number.isNaN(at.getTime()) || via.length === 0) return undefined;
  return { state: m[1] as EffectiveState['state'], at, via, ...(m[4] ? { how: m[4] as EffectiveHow } : {}) };
}

/**
 * The write counter of the broker's Secret (its `generation` annotation) that the node applied:
 * the broker counts, per Registry, the nodes whose counter has reached the write that brought the
 * Registry's current credential and whose configuration is effective. Absent when the node does
 * not use the broker's Secret. Patched with the other annotations when it changes; its change
 * alone does not move applied-at.
 */
export const ANNOTATION_BROKER_GENERATION = `${ANNOTATION_PREFIX}broker-generation`;
