// `doctor --kubelet-credentials provider`: what it can tell from the node in provider mode, the
// kubelet's requests to the plugin included (the file the plugin touches, NRC_PROVIDER_ASKED).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { diagnose } from '../../src/commands/doctor.ts';
import { HostFs } from '../../src/host/host-fs.ts';
import { PROVIDER_ASKED_PATH, PROVIDER_RESPONSE_PATH } from '../../src/model/state-paths.ts';
import { renderProviderDigest, renderProviderResponse } from '../../src/plan/provider.ts';
import { DEFAULT_TARGET_OPTIONS, type TargetOptions } from '../../src/runtime/targets.ts';

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

/** A host root with these files; `times` sets a file's mtime (the plugin's touch, the agent's write). */
function node(files: Record<string, Uint8Array | string>, times: Record<string, Date> = {}): HostFs {
  const root = mkdtempSync(join(tmpdir(), 'nrc-doctor-'));
  roots.push(root);
  for (const [path, bytes] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), bytes);
  }
  for (const [path, at] of Object.entries(times)) utimesSync(join(root, path), at, at);
  return new HostFs(root);
}

const provider: TargetOptions = { ...DEFAULT_TARGET_OPTIONS, kubeletCredentials: 'provider' };
const about = (host: HostFs, o: TargetOptions = provider) => diagnose(host, o).filter((f) => f.what.includes('provider') || f.what.includes(PROVIDER_RESPONSE_PATH));
const body = renderProviderResponse(new Map([['reg.example.com', { username: 'u', password: 'p' }]]));
const digest = renderProviderDigest(PROVIDER_RESPONSE_PATH, body);
const state = { [PROVIDER_RESPONSE_PATH]: body, [`${PROVIDER_RESPONSE_PATH}.sha256`]: digest };
const WRITTEN = new Date('2026-01-02T10:00:00Z');
const written = { [PROVIDER_RESPONSE_PATH]: WRITTEN, [`${PROVIDER_RESPONSE_PATH}.sha256`]: WRITTEN };

describe('doctor in provider mode', () => {
  it('says where the credentials are served from, that the plugin has nothing before the first apply, and that the kubelet never asked', () => {
    const findings = about(node({}));
    expect(findings.map((f) => f.level)).toEqual(['info', 'info', 'warn']);
    expect(findings[1]?.what).toContain('does not exist yet');
    expect(findings[2]?.what).toContain('never asked');
  });

  it('is quiet about a whole state file and reports a damaged one with its code', () => {
    const asked = { [PROVIDER_ASKED_PATH]: '' };
    expect(about(node({ ...state, ...asked })).map((f) => f.level)).toEqual(['info', 'ok']);
    const damaged = about(node({ [PROVIDER_RESPONSE_PATH]: body.subarray(0, 20), [`${PROVIDER_RESPONSE_PATH}.sha256`]: digest, ...asked }));
    expect(damaged.map((f) => [f.level, f.code])).toEqual([['info', undefined], ['error', 'NRC_E_PROVIDER_STATE_CORRUPT'], ['ok', undefined]]);
  });

  it('warns when the plugin was never asked, naming what to check', () => {
    const [, never] = about(node(state, written));
    expect(never).toMatchObject({ level: 'warn' });
    expect(never?.what).toContain(`no ${PROVIDER_ASKED_PATH}`);
    expect(never?.what).toContain('pulls of private images');
    for (const what of ['--image-credential-provider-config', '--image-credential-provider-bin-dir', 'matchImages', 'NRC_PROVIDER_ASKED', 'a pull of such an image happened']) expect(never?.fix).toContain(what);
  });

  it('reports the last request and whether it came after the state was last written', () => {
    const after = new Date('2026-01-02T10:05:00Z');
    const [, asking] = about(node({ ...state, [PROVIDER_ASKED_PATH]: '' }, { ...written, [PROVIDER_ASKED_PATH]: after }));
    expect(asking).toEqual({ level: 'ok', what: `the kubelet asks the credential provider plugin: last request at ${after.toISOString()}, after the state's last write at ${WRITTEN.toISOString()}: it got the current credentials` });

    // An old request: the kubelet asks, but has not pulled since the agent last changed the state.
    const before = new Date('2026-01-01T08:00:00Z');
    const [, old] = about(node({ ...state, [PROVIDER_ASKED_PATH]: '' }, { ...written, [PROVIDER_ASKED_PATH]: before }));
    expect(old).toMatchObject({ level: 'info' });
    expect(old?.what).toContain(`last request at ${before.toISOString()}, before the state's last write at ${WRITTEN.toISOString()}: no pull since the last change`);

    // Before the agent's first write: the request is on record, there is no state to compare with.
    const [, , early] = about(node({ [PROVIDER_ASKED_PATH]: '' }, { [PROVIDER_ASKED_PATH]: before }));
    expect(early).toMatchObject({ level: 'ok', what: `the kubelet asks the credential provider plugin: last request at ${before.toISOString()} (the agent has not written its state yet)` });
  });

  it('does not take a symlink or a directory for a request', () => {
    const host = node(state, written);
    symlinkSync(join(host.root, PROVIDER_RESPONSE_PATH), join(host.root, PROVIDER_ASKED_PATH));
    expect(about(host)[1]).toMatchObject({ level: 'warn' });
    const dir = node(state, written);
    mkdirSync(join(dir.root, PROVIDER_ASKED_PATH));
    expect(about(dir)[1]).toMatchObject({ level: 'warn' });
  });

  it('in config-json mode, says nothing without a request, and that the node is ready for provider mode with one', () => {
    expect(about(node({}), DEFAULT_TARGET_OPTIONS)).toEqual([]);
    const at = new Date('2026-01-02T11:00:00Z');
    const findings = about(node({ [PROVIDER_ASKED_PATH]: '' }, { [PROVIDER_ASKED_PATH]: at }), DEFAULT_TARGET_OPTIONS);
    expect(findings).toEqual([{ level: 'info', what: `the kubelet asked the credential provider plugin at ${at.toISOString()} (${PROVIDER_ASKED_PATH}): this node is ready for --kubelet-credentials provider` }]);
  });
});
