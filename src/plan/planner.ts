import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { AgentError } from '../errors.ts';
import type { FileState } from '../model/host-state.ts';
import { ancestors } from '../model/host-state.ts';
import type { RegistryCredential } from '../model/credential.ts';
import { DOCKER_HUB_HOST, DOCKER_HUB_KEY } from '../model/registry-key.ts';
import { encodeAuth } from '../model/basic-auth.ts';
import type { HostOptions } from '../model/host-options.ts';
import { decodeKubeletEntry, goFieldAll, KUBELET_HUB_FALLBACK, keyCovers, kubeletKey, matchesDockerHub, readKubeletDocument, readKubeletFile, takesPrecedence, type KubeletCredential, type KubeletKey } from '../model/kubelet-config.ts';
import { quoteSubject } from '../model/registry-key.ts';
import { renderHostsToml } from './containerd-hosts.ts';
import { kubeletReads } from './kubelet-file.ts';
import { providerDigestPath, readProviderAuth, renderProviderDigest, renderProviderResponse } from './provider.ts';
import { formatDockerConfig, isJsonObject, jsonEqual, parseJsonObject, tooDeep, type JsonObject } from './json.ts';
import { ECR_CACHE_PATH, RECORD_PATH, STATE_DIR } from '../model/state-paths.ts';
import { collate } from '../model/collate.ts';
import type { JsonFileRecord, OwnedEntry, OwnershipRecord } from './ownership.ts';
import type { FileChange } from '../model/apply-report.ts';
import type { Operation, Plan, PlanInput } from './types.ts';

const CREDENTIAL_MODE = 0o600;
const PUBLIC_MODE = 0o644;

interface WholeFile {
  readonly bytes: Uint8Array;
  readonly mode: number;
  /** Which keys changed, against the file on the host (the provider's response); none for others. */
  readonly keysChanged?: (before: FileState) => KeyChanges;
}

type KeyChanges = Pick<FileChange, 'added' | 'updated' | 'removed'>;
const NO_KEYS: KeyChanges = { added: [], updated: [], removed: [] };

/** Keys added, updated and removed from one map of entries to another. */
function keyChanges(before: ReadonlyMap<string, unknown>, after: ReadonlyMap<string, unknown>): KeyChanges {
  const keys = (f: (k: string) => boolean, from: ReadonlyMap<string, unknown>): string[] => [...from.keys()].filter(f).sort();
  return {
    added: keys((k) => !before.has(k), after),
    updated: keys((k) => before.has(k) && !jsonEqual(before.get(k), after.get(k)), after),
    removed: keys((k) => !after.has(k), before),
  };
}

/** Mutable working state of one planning pass. */
class Work {
  readonly ops: Operation[] = [];
  readonly errors: AgentError[] = [];
  readonly changes: FileChange[] = [];
  readonly jsonFiles: Record<string, JsonFileRecord> = {};
  readonly files: Record<string, { sha256: string }> = {};
  /** Every file that exists once the plan is applied and that the agent cares about. */
  readonly keep = new Set<string>();
  constructor(readonly input: PlanInput) {}

  state(path: string): FileState {
    return this.input.snapshot.get(path) ?? { kind: 'missing' };
  }

  private seedRead = false;
  private seedDoc: JsonObject | undefined;
  /** firstSeed, read once per pass (the Docker Hub check and the kubelet file both ask). */
  seed(): JsonObject | undefined {
    if (!this.seedRead) {
      this.seedDoc = firstSeed(this);
      this.seedRead = true;
    }
    return this.seedDoc;
  }
}

/** The value the agent writes under its key in a docker config.json. */
export function dockerConfigEntry(c: RegistryCredential): JsonObject {
  const entry: JsonObject = {};
  if (c.username !== '' || c.password !== '') entry['auth'] = encodeAuth(c.username, c.password);
  if (c.identityToken !== undefined) entry['identitytoken'] = c.identityToken;
  return entry;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

/** The "auths" of a document, by raw key. */
function authsMap(doc: JsonObject | undefined): Map<string, unknown> {
  const auths = doc?.['auths'];
  return new Map(isJsonObject(auths) ? Object.entries(auths) : []);
}

/**
 * The entries in the order of `reference` (the file as the agent first found it) first, then the
 * others as they are: an entry moved aside and put back, or handed back to the file when the
 * credential mode changes, returns to its place, so the file comes back byte for byte.
 */
function inReferenceOrder(auths: JsonObject, reference: unknown): JsonObject {
  const first = new Set(isJsonObject(reference) && isJsonObject(reference['auths']) ? Object.keys(reference['auths']).filter((k) => Object.hasOwn(auths, k)) : []);
  const rest = Object.keys(auths).filter((k) => !first.has(k));
  // fromEntries: a "__proto__" key stays a plain entry.
  return Object.fromEntries([...first, ...rest].map((k) => [k, auths[k]]));
}

/** Empty "auths" and no "auths" mean the same to every reader; compare them as equal. */
function withoutEmptyAuths(doc: JsonObject): JsonObject {
  const auths = doc['auths'];
  if (isJsonObject(auths) && Object.keys(auths).length === 0) {
    const { auths: _drop, ...rest } = doc;
    return rest;
  }
  return doc;
}

/** Checks that a path's ancestors are plain directories (or missing); returns the problem if not. */
function ancestorProblem(work: Work, path: string): AgentError | undefined {
  for (const dir of ancestors(path)) {
    const st = work.state(dir);
    if (st.kind === 'symlink') return new AgentError('NRC_E_UNSAFE_PATH', { subject: dir });
    if (st.kind === 'unreadable') return new AgentError('NRC_E_WRITE_FAILED', { subject: dir, detail: `(${st.errno})` });
    if (st.kind === 'file' || st.kind === 'other') return new AgentError('NRC_E_TARGET_NOT_FILE', { subject: dir });
  }
  return undefined;
}

/** A problem with the target itself (not a regular file), or undefined. */
function targetProblem(st: FileState, path: string): AgentError | undefined {
  if (st.kind === 'symlink') return new AgentError('NRC_E_UNSAFE_PATH', { subject: path });
  if (st.kind === 'directory' || st.kind === 'other') return new AgentError('NRC_E_TARGET_NOT_FILE', { subject: path });
  if (st.kind === 'unreadable') return new AgentError('NRC_E_WRITE_FAILED', { subject: path, detail: `(${st.errno})` });
  return undefined;
}

/**
 * The auths of the file the kubelet reads today when its own config.json is missing (kubeletReads:
 * the first in its search order that it can read; `{}` or `null` stops the search with no
 * credential). A file nested too deep to handle seeds nothing.
 */
function firstSeed(work: Work): JsonObject | undefined {
  const path = kubeletReads(work.input.targets.kubeletFallbacks, (p) => work.state(p));
  const st = path === undefined ? undefined : work.state(path);
  if (path === undefined || st?.kind !== 'file') return undefined;
  const legacy = path.endsWith('.dockercfg');
  const { doc } = readKubeletFile(st.bytes, legacy);
  if (tooDeep(doc)) return undefined;
  if (!isJsonObject(doc)) return {};
  if (legacy) return { auths: structuredClone(doc) };
  let auths: JsonObject = {};
  for (const member of goFieldAll(doc, 'auths')) if (isJsonObject(member)) auths = { ...auths, ...structuredClone(member) };
  return { auths };
}

/** Docker Hub images as the kubelet's keyring matches them directly. */
const HUB_DIRECT = kubeletKey(DOCKER_HUB_HOST)!;

/**
 * For the kubelet's own file: moves aside the foreign entries that would make the kubelet ignore
 * the whole file, or that it would try before the agent's credential for the agent's images
 * (another spelling of the same key, a narrower key, a docker.io key over the Docker Hub
 * fallback). What was moved is returned for the record. The caller first puts back what was moved
 * earlier, so an entry comes back once nothing requires it, and all do when no entry of ours is left.
 */
function displaceForeign(work: Work, path: string, auths: JsonObject, desired: ReadonlyMap<string, JsonObject>): Record<string, unknown> {
  const displaced: Record<string, unknown> = {};
  if (desired.size === 0) return displaced;
  const ours = [...desired.keys()].map(kubeletKey).filter((k): k is KubeletKey => k !== undefined);
  for (const raw of Object.keys(auths)) {
    if (desired.has(raw)) continue;
    let code: 'NRC_E_FOREIGN_ENTRY_INVALID' | 'NRC_E_FOREIGN_ENTRY_REPLACED' | undefined;
    let detail = '';
    const entry = decodeKubeletEntry(auths[raw]);
    const theirs = kubeletKey(raw);
    if (typeof entry === 'string' && entry !== 'auth-not-utf8') {
      code = 'NRC_E_FOREIGN_ENTRY_INVALID';
    } else if (theirs !== undefined) {
      for (const mine of ours) {
        if (!takesPrecedence(theirs, mine)) continue;
        // With docker.io written too, the fallback key no longer has to win on its own.
        if (mine.key === KUBELET_HUB_FALLBACK && desired.has(DOCKER_HUB_HOST) && !keyCovers(HUB_DIRECT, theirs)) continue;
        const narrower = theirs.key === mine.key || keyCovers(mine, theirs) || (mine.key === KUBELET_HUB_FALLBACK && keyCovers(HUB_DIRECT, theirs));
        if (narrower) {
          code = 'NRC_E_FOREIGN_ENTRY_REPLACED';
          detail = `It stood before the agent's ${quoteSubject(mine.key)}.`;
          break;
        }
        work.errors.push(new AgentError('NRC_E_FOREIGN_ENTRY_SHADOWS', { subject: `${path} ${quoteSubject(raw)}`, detail: `It is tried before the agent's ${quoteSubject(mine.key)}.` }));
      }
    }
    if (code === undefined) continue;
    displaced[raw] = auths[raw];
    delete auths[raw];
    work.errors.push(new AgentError(code, { subject: `${path} ${quoteSubject(raw)}`, ...(detail ? { detail } : {}) }));
  }
  return displaced;
}

/**
 * Provider mode: the kubelet tries every config.json credential before any plugin's
 * (image_manager.go: UnionDockerKeyring{node keyring, plugins}), and matches each keyring on its
 * own (the Docker Hub fallback key of one is used when nothing else in THAT one matched). So a
 * foreign entry that the kubelet would try after one the provider serves, for some image, moves
 * to the provider too, behind it: moved aside like displaced entries (and put back the same way),
 * and served, where the kubelet orders it among the agent's as it would in config.json. What stays
 * in config.json is then tried before the provider exactly where config-json mode tries it first.
 * Returns the moved entries (raw key → value), taken out of `auths`.
 */
function behindProvider(work: Work, path: string, auths: JsonObject, desired: ReadonlyMap<string, JsonObject>): Record<string, unknown> {
  const moved: Record<string, unknown> = {};
  // config.json entry `n` before provider entry `p` is wrong when config-json mode tries p first,
  // or when p is the Docker Hub fallback key, which n (matching Docker Hub) would keep unused.
  const mustFollow = (n: KubeletKey, p: KubeletKey): boolean => takesPrecedence(p, n) || (p.key === KUBELET_HUB_FALLBACK && matchesDockerHub(n));
  const stuck = new Set<string>();
  // Each round checks the entries still in the file against the keys the provider took on in the
  // round before (all of the agent's first), until none moves.
  let frontier = [...desired.keys()].map(kubeletKey).filter((k): k is KubeletKey => k !== undefined);
  while (frontier.length > 0) {
    const next: KubeletKey[] = [];
    for (const raw of Object.keys(auths)) {
      const theirs = kubeletKey(raw);
      if (desired.has(raw) || stuck.has(raw) || theirs === undefined || !frontier.some((p) => mustFollow(theirs, p))) continue;
      if (typeof decodeKubeletEntry(auths[raw]) === 'string') {
        // An auth that is not UTF-8 cannot be written into the provider's JSON: it stays, tried first.
        stuck.add(raw);
        work.errors.push(new AgentError('NRC_E_FOREIGN_ENTRY_SHADOWS', { subject: `${path} ${quoteSubject(raw)}`, detail: 'It is tried before the credential provider\'s.' }));
        continue;
      }
      moved[raw] = auths[raw];
      delete auths[raw];
      next.push(theirs);
    }
    frontier = next;
  }
  return moved;
}

/** What the kubelet reads from docker config entries: raw key → username and password. */
function kubeletView(entries: Iterable<readonly [string, unknown]>): Map<string, KubeletCredential> {
  const out = new Map<string, KubeletCredential>();
  for (const [key, value] of entries) {
    const c = decodeKubeletEntry(value);
    if (typeof c !== 'string') out.set(key, c);
  }
  return out;
}

/**
 * Merges the agent's entries into one docker config.json, keeping every foreign entry and field.
 * `provider` (the kubelet's file in provider mode): the same merge, then the agent's entries and
 * the foreign ones that must follow them (behindProvider) leave the file for the provider's answer,
 * which is returned (raw key → credential).
 */
function planDockerConfig(work: Work, path: string, desired: ReadonlyMap<string, JsonObject>, kubelet: boolean, provider = false): Map<string, KubeletCredential> | undefined {
  // When the file cannot be planned, the provider still serves the agent's own credentials.
  const servedAlone = provider ? kubeletView(desired) : undefined;
  const rec = work.input.record.jsonFiles[path];
  const st = work.state(path);
  const problem = ancestorProblem(work, path) ?? targetProblem(st, path);
  const keepRecord = (): void => {
    if (rec) work.jsonFiles[path] = rec;
  };
  if (problem) {
    if (desired.size > 0 || rec) work.errors.push(problem);
    keepRecord();
    return servedAlone;
  }

  let doc: JsonObject;
  let current: JsonObject | undefined;
  let created: boolean;
  let original: JsonFileRecord['original'];
  let foreignAtCreation: unknown;
  if (st.kind === 'file') {
    current = parseJsonObject(st.bytes);
    if (current !== undefined && current['auths'] !== undefined && !isJsonObject(current['auths'])) current = undefined;
    if (current === undefined && !rec?.created) {
      work.errors.push(new AgentError('NRC_E_FOREIGN_FILE_UNPARSEABLE', { subject: path }));
      keepRecord();
      return servedAlone;
    }
    created = rec?.created ?? false;
    original = rec ? rec.original : { bytes: Buffer.from(st.bytes).toString('base64'), mode: st.mode };
    foreignAtCreation = rec?.foreignAtCreation;
    // Our own file damaged by someone else: rebuild it from what it held at creation.
    doc = current ?? (isJsonObject(foreignAtCreation) ? structuredClone(foreignAtCreation) : {});
  } else {
    if (desired.size === 0) return servedAlone; // nothing to add, and the file is gone: nothing is ours any more
    const seeded = kubelet ? work.seed() : undefined;
    doc = seeded ?? {};
    created = true;
    foreignAtCreation = structuredClone(doc);
  }
  doc = structuredClone(doc);
  const auths: JsonObject = isJsonObject(doc['auths']) ? doc['auths'] : {};
  for (const [raw, value] of Object.entries(rec?.displaced ?? {})) if (!(raw in auths)) auths[raw] = structuredClone(value);
  const owned = rec?.entries ?? {};
  const entries: Record<string, OwnedEntry> = {};
  const added: string[] = [];
  const updated: string[] = [];
  const removed: string[] = [];

  for (const [key, entry] of Object.entries(owned)) {
    if (desired.has(key)) continue;
    if ('replaced' in entry && entry.replaced !== undefined) auths[key] = structuredClone(entry.replaced);
    else delete auths[key];
    removed.push(key);
  }
  for (const [key, value] of desired) {
    const mine = owned[key];
    if (mine) {
      entries[key] = mine;
      if (!jsonEqual(auths[key], value)) updated.push(key);
    } else {
      entries[key] = key in auths ? { replaced: auths[key] } : {};
      added.push(key);
    }
    auths[key] = value;
  }
  const displaced = kubelet ? displaceForeign(work, path, auths, desired) : {};
  let served: Map<string, KubeletCredential> | undefined;
  if (provider) {
    const moved = behindProvider(work, path, auths, desired);
    served = kubeletView([...desired, ...Object.entries(moved)]);
    for (const key of desired.keys()) delete auths[key];
    Object.assign(displaced, moved);
  }
  doc['auths'] = inReferenceOrder(auths, created ? foreignAtCreation : original && parseJsonObject(Buffer.from(original.bytes, 'base64')));
  // Something besides the entries (HttpHeaders that are not strings) can still make the kubelet skip the file.
  if (kubelet && Object.keys(entries).length > 0 && !readKubeletDocument(doc, false).readable) {
    work.errors.push(new AgentError('NRC_E_KUBELET_CANNOT_READ', { subject: path }));
  }

  // In provider mode the file changes by whole entries coming and going, the agent's or not.
  const keys = (after: JsonObject | undefined): KeyChanges => (provider ? keyChanges(authsMap(current), authsMap(after)) : { added, updated, removed });
  const stillOurs = Object.keys(entries).length > 0;
  if (stillOurs) {
    work.jsonFiles[path] = {
      created,
      ...(original ? { original } : {}),
      ...(created ? { foreignAtCreation } : {}),
      entries,
      ...(Object.keys(displaced).length > 0 ? { displaced } : {}),
    };
    work.keep.add(path);
    if (current === undefined || !jsonEqual(withoutEmptyAuths(current), withoutEmptyAuths(doc))) {
      const keepOwner = st.kind === 'file' ? { mode: st.mode, uid: st.uid, gid: st.gid } : { mode: CREDENTIAL_MODE };
      work.ops.push({ op: 'write', path, bytes: formatDockerConfig(doc), ...keepOwner });
      work.changes.push({ path, change: st.kind === 'file' ? 'update' : 'create', ...keys(doc) });
    }
    return served;
  }

  // Nothing of ours remains: hand the file back as it was, when nobody else changed it meanwhile.
  if (st.kind !== 'file') return served;
  if (created) {
    if (jsonEqual(withoutEmptyAuths(doc), withoutEmptyAuths(isJsonObject(foreignAtCreation) ? foreignAtCreation : {}))) {
      work.ops.push({ op: 'delete', path });
      work.changes.push({ path, change: 'delete', ...keys(undefined) });
      return served;
    }
  } else if (original) {
    const originalBytes = Buffer.from(original.bytes, 'base64');
    const originalDoc = parseJsonObject(originalBytes);
    if (originalDoc && jsonEqual(withoutEmptyAuths(doc), withoutEmptyAuths(originalDoc))) {
      work.keep.add(path);
      if (!bytesEqual(st.bytes, originalBytes) || st.mode !== original.mode) {
        work.ops.push({ op: 'write', path, bytes: originalBytes, mode: original.mode, uid: st.uid, gid: st.gid });
        work.changes.push({ path, change: 'restore', ...keys(originalDoc) });
      }
      return served;
    }
  }
  // Someone else changed the file while it held our entries: keep their changes, drop ours.
  work.keep.add(path);
  if (current === undefined || !jsonEqual(current, doc)) {
    work.ops.push({ op: 'write', path, bytes: formatDockerConfig(doc), mode: st.mode, uid: st.uid, gid: st.gid });
    work.changes.push({ path, change: 'update', ...keys(doc) });
  }
  return served;
}

/**
 * The kubelet tries the Docker Hub fallback key only when no other key matched. A foreign key
 * broader than docker.io that matches Docker Hub images (`*.io`) would hide it, and cannot be
 * moved aside without breaking the other registries it serves: then the agent writes its Docker
 * Hub credential as `docker.io` too, which the kubelet tries before that key.
 */
function withHubPromoted(work: Work, desired: ReadonlyMap<string, JsonObject>): ReadonlyMap<string, JsonObject> {
  const hub = desired.get(DOCKER_HUB_KEY);
  if (hub === undefined || desired.has(DOCKER_HUB_HOST)) return desired;
  const path = work.input.targets.kubeletConfig;
  const st = work.state(path);
  const doc = st.kind === 'file' ? parseJsonObject(st.bytes) : work.seed();
  const rec = work.input.record.jsonFiles[path];
  // Entries moved aside come back into the file's view first (planDockerConfig), and those the
  // provider serves (provider mode) still match images there.
  const auths: JsonObject = { ...rec?.displaced, ...(doc && isJsonObject(doc['auths']) ? doc['auths'] : {}) };
  const ours = rec?.entries ?? {};
  const mine = [...desired.keys()].map(kubeletKey).filter((k): k is KubeletKey => k !== undefined);
  const hiding = Object.keys(auths).filter((raw) => {
    const entry = decodeKubeletEntry(auths[raw]);
    // One the kubelet cannot read is moved aside (displaceForeign): it hides nothing.
    if (desired.has(raw) || raw in ours || (typeof entry === 'string' && entry !== 'auth-not-utf8')) return false;
    const k = kubeletKey(raw);
    // A foreign key that one of ours covers is moved aside anyway (displaceForeign).
    if (k === undefined || mine.some((m) => keyCovers(m, k))) return false;
    return k.key !== DOCKER_HUB_HOST && matchesDockerHub(k) && !keyCovers(HUB_DIRECT, k);
  });
  if (hiding.length === 0) return desired;
  // docker.io sorts before some of ours that match part of Docker Hub (*.io/library): for those
  // images the kubelet now tries the Docker Hub credential first. No single key can avoid that.
  const overtaken = mine.filter((m) => m.key !== KUBELET_HUB_FALLBACK && takesPrecedence(HUB_DIRECT, m));
  if (overtaken.length > 0) {
    work.errors.push(new AgentError('NRC_E_HUB_ALIAS_REORDERS', {
      subject: `${path} ${hiding.map(quoteSubject).join(', ')}`,
      detail: `docker.io is tried before the agent's ${overtaken.map((m) => quoteSubject(m.key)).join(', ')}.`,
    }));
  }
  return new Map<string, JsonObject>([...desired, [DOCKER_HUB_HOST, hub] as const].sort(([a], [b]) => collate(a, b)));
}

/**
 * The docker CLI looks Docker Hub up only under DOCKER_HUB_KEY: give it the `docker.io` entry
 * (which the kubelet prefers too) under that name.
 */
function forDockerCli(desired: ReadonlyMap<string, JsonObject>): ReadonlyMap<string, JsonObject> {
  const direct = desired.get(DOCKER_HUB_HOST);
  if (direct === undefined) return desired;
  const out = new Map(desired);
  out.delete(DOCKER_HUB_HOST);
  out.set(DOCKER_HUB_KEY, direct);
  return new Map([...out].sort(([a], [b]) => collate(a, b)));
}

/**
 * containerd's directory for a registry host, and the `host_port_` spelling it looks for first
 * (a foreign one of those would shadow the agent's).
 */
function containerdDirs(hostsDir: string, host: string): { dir: string; alt: string | undefined } {
  const alt = host.includes(':') && !host.startsWith('[') ? posix.join(hostsDir, `${host.replace(':', '_')}_`) : undefined;
  return { dir: posix.join(hostsDir, host), alt };
}

/** hosts.toml, ca.crt and certs.d files wanted for each registry with host options. */
function desiredWholeFiles(work: Work): Map<string, WholeFile> {
  const { targets, hostOptions, credentials, record } = work.input;
  const out = new Map<string, WholeFile>();
  const byHost = new Map<string, RegistryCredential>();
  for (const c of credentials) if (c.key === c.host || (c.host === DOCKER_HUB_HOST && !c.key.includes('/'))) byHost.set(c.host, c);

  const ownedDir = (dir: string): boolean => record.dirs.includes(dir);
  // A directory someone else made for this registry is theirs: never write into it.
  const foreign = (dir: string): boolean => {
    const st = work.state(dir);
    return st.kind !== 'missing' && !ownedDir(dir);
  };

  for (const options of [...hostOptions.values()].sort((a, b) => collate(a.host, b.host))) {
    const host = options.host;
    if (host.includes('*')) {
      work.errors.push(new AgentError('NRC_E_HOST_OPTIONS_UNSUPPORTED', { subject: host }));
      continue;
    }
    if (options.authHeader && host === DOCKER_HUB_HOST) {
      work.errors.push(new AgentError('NRC_E_HOST_OPTIONS_UNSUPPORTED', { subject: host, detail: 'Docker Hub uses Bearer tokens, so a Basic header would break pulls.' }));
      continue;
    }
    const credential = byHost.get(host);
    const needsHostsToml = options.ca !== undefined || options.skipVerify || (options.authHeader && credential !== undefined);
    if (targets.containerdHostsDir !== undefined && needsHostsToml && !work.input.cleanup) {
      const { dir, alt } = containerdDirs(targets.containerdHostsDir, host);
      if (foreign(dir) || (alt !== undefined && work.state(alt).kind !== 'missing')) {
        work.errors.push(new AgentError('NRC_E_FOREIGN_DIRECTORY', { subject: foreign(dir) ? dir : alt }));
      } else {
        // containerd takes the first directory that exists, without merging: ours wins over _default.
        const fallback = posix.join(targets.containerdHostsDir, '_default');
        if (work.state(fallback).kind === 'directory') work.errors.push(new AgentError('NRC_E_CONTAINERD_DEFAULT_BYPASSED', { subject: dir, detail: `(${fallback} no longer applies to ${host})` }));
        const toml = renderHostsToml(options, credential);
        const secret = toml.includes('Authorization');
        out.set(posix.join(dir, 'hosts.toml'), { bytes: Buffer.from(toml, 'utf8'), mode: secret ? CREDENTIAL_MODE : PUBLIC_MODE });
        if (options.ca !== undefined) out.set(posix.join(dir, 'ca.crt'), { bytes: Buffer.from(options.ca, 'utf8'), mode: PUBLIC_MODE });
      }
    }
    if (options.ca !== undefined && !work.input.cleanup) {
      for (const certs of targets.certsDirs) {
        const dir = posix.join(certs, host);
        if (foreign(dir)) work.errors.push(new AgentError('NRC_E_FOREIGN_DIRECTORY', { subject: dir }));
        else out.set(posix.join(dir, 'ca.crt'), { bytes: Buffer.from(options.ca, 'utf8'), mode: PUBLIC_MODE });
      }
    }
  }
  return out;
}

/**
 * Provider mode: the response the plugin prints, then its digest (written in this order; the
 * plugin reads a mismatch again before it counts as damage). Credentials, so mode 0600.
 */
function providerFiles(path: string, served: ReadonlyMap<string, KubeletCredential>): Map<string, WholeFile> {
  const body = renderProviderResponse(served);
  const keysChanged = (before: FileState): KeyChanges => {
    const previous = before.kind === 'file' ? readProviderAuth(before.bytes) : undefined;
    return keyChanges(previous ?? new Map(), served);
  };
  return new Map([
    [path, { bytes: body, mode: CREDENTIAL_MODE, keysChanged }],
    [providerDigestPath(path), { bytes: renderProviderDigest(path, body), mode: CREDENTIAL_MODE }],
  ]);
}

/**
 * Namespace scoping (provider mode, service-account tokens): per namespace that has scoped
 * credentials, the whole answer for its pods: the node-wide answer, then its scoped credentials
 * (the first per key, in precedence order; one replaces a node-wide one of the same key).
 * Scoped credentials reach no other file.
 */
function namespaceFiles(dir: string, served: ReadonlyMap<string, KubeletCredential>, scoped: readonly RegistryCredential[]): Map<string, WholeFile> {
  const perNamespace = new Map<string, Map<string, KubeletCredential>>();
  for (const c of scoped) {
    const credential = kubeletView([[c.key, dockerConfigEntry(c)]]).get(c.key);
    if (credential === undefined) continue;
    for (const ns of c.namespaces ?? []) {
      const answer = perNamespace.get(ns) ?? new Map<string, KubeletCredential>();
      perNamespace.set(ns, answer);
      if (!answer.has(c.key)) answer.set(c.key, credential);
    }
  }
  const out = new Map<string, WholeFile>();
  for (const [ns, own] of [...perNamespace].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    for (const [path, file] of providerFiles(namespaceAnswerPath(dir, ns), new Map([...served, ...own]))) out.set(path, file);
  }
  return out;
}

/** The answer file of one namespace (a namespace name is a DNS label: a safe file name). */
export const namespaceAnswerPath = (dir: string, namespace: string): string => posix.join(dir, `${namespace}.json`);

function planWholeFiles(work: Work, extra: ReadonlyMap<string, WholeFile>): void {
  const desired = new Map([...desiredWholeFiles(work), ...extra]);
  for (const [path, file] of desired) {
    const st = work.state(path);
    const problem = ancestorProblem(work, path) ?? targetProblem(st, path);
    if (problem) {
      work.errors.push(problem);
      if (work.input.record.files[path]) work.files[path] = work.input.record.files[path];
      continue;
    }
    work.files[path] = { sha256: sha256(file.bytes) };
    work.keep.add(path);
    if (st.kind === 'file' && bytesEqual(st.bytes, file.bytes) && st.mode === file.mode) continue;
    work.ops.push({ op: 'write', path, bytes: file.bytes, mode: file.mode });
    work.changes.push({ path, change: st.kind === 'file' ? 'update' : 'create', ...(file.keysChanged?.(st) ?? NO_KEYS) });
  }
  for (const path of Object.keys(work.input.record.files)) {
    if (desired.has(path)) continue;
    const st = work.state(path);
    // Only a regular file is removed: anything else at that path is no longer what the agent wrote.
    if (st.kind === 'file') {
      work.ops.push({ op: 'delete', path });
      work.changes.push({ path, change: 'delete', added: [], updated: [], removed: [] });
    }
  }
}

/** Directories: create what wanted files need, remove those the agent made and no longer needs. */
function planDirectories(work: Work, recordNeeded: boolean): string[] {
  const needed = new Set<string>();
  const wanted = [...work.keep];
  if (recordNeeded) wanted.push(RECORD_PATH);
  for (const path of wanted) for (const dir of ancestors(path)) needed.add(dir);
  const dirs: string[] = [];
  const mkdirs: string[] = [];
  for (const dir of [...needed].sort((a, b) => a.split('/').length - b.split('/').length || collate(a, b))) {
    const st = work.state(dir);
    if (st.kind === 'missing') {
      mkdirs.push(dir);
      dirs.push(dir);
    } else if (work.input.record.dirs.includes(dir) || dir === STATE_DIR) {
      dirs.push(dir);
    }
  }
  const writesAndDeletes = work.ops.splice(0);
  work.ops.push(...mkdirs.map((path) => ({ op: 'mkdir' as const, path })));
  work.ops.push(...writesAndDeletes.filter((o) => o.op === 'write'), ...writesAndDeletes.filter((o) => o.op === 'delete'));
  // The state directory is the agent's by its name, even when a crash left it without a record.
  const rmdirs = [...new Set([...work.input.record.dirs, STATE_DIR])]
    .filter((d) => !needed.has(d) && work.state(d).kind === 'directory')
    .sort((a, b) => b.split('/').length - a.split('/').length || collate(b, a));
  work.ops.push(...rmdirs.map((path) => ({ op: 'rmdir' as const, path })));
  return dirs.sort();
}

/** Paths the planner needs in its snapshot for these targets, options and record. */
export function pathsToSnapshot(input: Omit<PlanInput, 'snapshot'>): string[] {
  const { targets, hostOptions, record } = input;
  const paths = new Set<string>([targets.kubeletConfig, ...targets.kubeletFallbacks, RECORD_PATH, ECR_CACHE_PATH]);
  if (targets.dockerConfig) paths.add(targets.dockerConfig);
  if (targets.providerResponse) paths.add(targets.providerResponse).add(providerDigestPath(targets.providerResponse));
  for (const host of hostOptions.keys()) {
    if (targets.containerdHostsDir) {
      const { dir, alt } = containerdDirs(targets.containerdHostsDir, host);
      paths.add(posix.join(dir, 'hosts.toml')).add(posix.join(dir, 'ca.crt')).add(posix.join(targets.containerdHostsDir, '_default'));
      if (alt !== undefined) paths.add(alt);
    }
    for (const certs of targets.certsDirs) paths.add(posix.join(certs, host, 'ca.crt'));
  }
  if (targets.providerNamespacesDir && targets.providerResponse) {
    paths.add(targets.providerNamespacesDir);
    for (const ns of new Set(input.credentials.flatMap((c) => c.namespaces ?? []))) {
      const path = namespaceAnswerPath(targets.providerNamespacesDir, ns);
      paths.add(path).add(providerDigestPath(path));
    }
  }
  for (const p of [...Object.keys(record.jsonFiles), ...Object.keys(record.files), ...record.dirs]) paths.add(p);
  return [...paths].filter((p) => !p.includes('*'));
}

/**
 * The pure planner: desired credentials + host options + what is on the host + what the agent
 * owns → the exact operations. It reads no clock, file or environment.
 */
export function plan(whole: PlanInput): Plan {
  // Namespace-scoped credentials never go to a node-wide file: only to the per-namespace answers.
  const scoped = whole.cleanup ? [] : whole.credentials.filter((c) => c.namespaces !== undefined);
  const input: PlanInput = scoped.length === 0 ? whole : { ...whole, credentials: whole.credentials.filter((c) => c.namespaces === undefined) };
  const work = new Work(input);
  const desired = new Map<string, JsonObject>();
  if (!input.cleanup) {
    for (const c of [...input.credentials].sort((a, b) => collate(a.key, b.key))) desired.set(c.key, dockerConfigEntry(c));
  }
  // Provider mode: the kubelet's file keeps only foreign entries; the agent's go to the provider.
  const provider = input.cleanup ? undefined : input.targets.providerResponse;
  const served = planDockerConfig(work, input.targets.kubeletConfig, withHubPromoted(work, desired), true, provider !== undefined);
  if (input.targets.dockerConfig !== undefined && input.targets.dockerConfig !== input.targets.kubeletConfig) {
    planDockerConfig(work, input.targets.dockerConfig, forDockerCli(desired), false);
  }
  // Files the agent once managed but no longer targets (flags changed): hand them back too.
  for (const path of Object.keys(input.record.jsonFiles)) {
    if (path !== input.targets.kubeletConfig && path !== input.targets.dockerConfig) planDockerConfig(work, path, new Map(), false);
  }
  const answers = provider !== undefined && served !== undefined ? providerFiles(provider, served) : new Map<string, WholeFile>();
  const namespacesDir = input.targets.providerNamespacesDir;
  if (scoped.length > 0 && namespacesDir !== undefined && provider !== undefined && served !== undefined) {
    for (const [path, file] of namespaceFiles(namespacesDir, served, scoped)) answers.set(path, file);
  } else {
    // Refused, never widened: each scoped credential is reported, and written nowhere.
    for (const c of scoped) {
      work.errors.push(new AgentError('NRC_E_SCOPE_UNSUPPORTED', { subject: `${c.source} ${quoteSubject(c.key)}`, detail: `(${input.targets.scopedRefusal ?? 'this node serves no per-namespace answers'})` }));
    }
  }
  planWholeFiles(work, answers);
  // Uninstall takes the cached ECR tokens too: nothing that holds a credential stays behind.
  if (input.cleanup && work.state(ECR_CACHE_PATH).kind === 'file') {
    work.ops.push({ op: 'delete', path: ECR_CACHE_PATH });
    work.changes.push({ path: ECR_CACHE_PATH, change: 'delete', added: [], updated: [], removed: [] });
  }
  // In cleanup, only what could not be removed stays recorded.
  const recordNeeded = Object.keys(work.jsonFiles).length > 0 || Object.keys(work.files).length > 0;
  const dirs = planDirectories(work, recordNeeded);
  const record: OwnershipRecord | undefined = recordNeeded ? { version: 1, jsonFiles: work.jsonFiles, files: work.files, dirs } : undefined;
  return { operations: work.ops, record, changes: work.changes, errors: work.errors };
}
