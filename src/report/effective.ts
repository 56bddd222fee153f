// Whether the node's current configuration is effective (a pull would use it), not only written,
// and when it became so or will at the latest (issue 22). Pure: the caller reads the files' times
// and the clock. docs/kubernetes.md#effective explains each rule; test/node checks them on the
// real kubelet.
//
// - provider: the plugin reads the agent's state at every request and the kubelet does not cache
//   its answers (cacheDuration 0s): effective when written.
// - config.json: the kubelet reads it through one cache per kubelet, refreshed only by a lookup
//   after 5 minutes (CachingDockerConfigProvider, pkg/credentialprovider/provider.go in 1.34.4).
//   Effective when the kubelet has read the file since it was written (its access time moved past
//   its modification time: relatime updates atime on the first read after a write, and the
//   agent's own reads use O_NOATIME), otherwise at the latest 5 minutes after the write.
// - hosts.toml: containerd reads it at every pull: effective when written.
import type { EffectiveState, EffectiveVia, EffectiveHow } from './node-annotations.ts';

/** CachingDockerConfigProvider's Lifetime (provider.go:104–112 in 1.34.4, unchanged through 1.38). */
export const KUBELET_CONFIG_CACHE_MS = 5 * 60_000;

export interface FileTimes {
  readonly atimeMs: number;
  readonly mtimeMs: number;
}

export interface EffectiveInput {
  /** The newest pass wrote everything it had to. */
  readonly written: boolean;
  /** When that pass ran. */
  readonly passAt: number;
  readonly mode: 'config-json' | 'provider';
  /** config-json: the kubelet's config.json now (undefined: absent). */
  readonly kubeletFile: FileTimes | undefined;
  /** config-json: when this agent last changed config.json (a deletion leaves no file to stat). */
  readonly kubeletChangedAt: number | undefined;
  /** False when an own read may have moved the access time (O_NOATIME refused): only the lifetime counts. */
  readonly atimeTrusted: boolean;
  /** provider: when the plugin's state was last written (undefined: never, in this process or on disk). */
  readonly providerWrittenAt: number | undefined;
  /** The agent manages containerd hosts.toml files on this node. */
  readonly hostsToml: boolean;
  readonly nowMs: number;
}

export function decideEffective(i: EffectiveInput): EffectiveState {
  const via: EffectiveVia[] = [i.mode === 'provider' ? 'provider' : 'config.json', ...(i.hostsToml ? (['hosts.toml'] as const) : [])];
  if (!i.written) return { state: 'not-written', at: new Date(i.passAt), via };
  if (i.mode === 'provider') return { state: 'effective', at: new Date(i.providerWrittenAt ?? i.passAt), via, how: 'at-write' };
  const writtenAt = Math.max(i.kubeletFile?.mtimeMs ?? Number.NEGATIVE_INFINITY, i.kubeletChangedAt ?? Number.NEGATIVE_INFINITY);
  // Nothing written by anyone that the kubelet could still hold an older copy of.
  if (!Number.isFinite(writtenAt)) return { state: 'effective', at: new Date(i.passAt), via, how: 'at-write' };
  const f = i.kubeletFile;
  const latest = writtenAt + KUBELET_CONFIG_CACHE_MS;
  // The earlier of the two: a read after the lifetime ran out does not move "since" later.
  if (i.atimeTrusted && f !== undefined && f.atimeMs > f.mtimeMs && f.atimeMs >= writtenAt && f.atimeMs < latest) return effectiveAt(f.atimeMs, via, 'kubelet-read');
  return i.nowMs >= latest ? effectiveAt(latest, via, 'cache-lifetime') : { state: 'pending', at: new Date(latest), via, how: 'cache-lifetime' };
}

function effectiveAt(ms: number, via: EffectiveVia[], how: EffectiveHow): EffectiveState {
  return { state: 'effective', at: new Date(ms), via, how };
}

/** When a pending state must be looked at again: now for an atime change (polled), at the latest its deadline. */
export function nextCheckMs(s: EffectiveState, nowMs: number, pollMs: number): number | undefined {
  if (s.state !== 'pending') return undefined;
  return Math.max(0, Math.min(pollMs, s.at.getTime() - nowMs));
}
