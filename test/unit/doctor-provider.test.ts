// `doctor --kubelet-credentials provider`: what it can tell from the node in provider mode.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { diagnose } from '../../src/commands/doctor.ts';
import { HostFs } from '../../src/host/host-fs.ts';
import { PROVIDER_RESPONSE_PATH } from '../../src/model/state-paths.ts';
import { renderProviderDigest, renderProviderResponse } from '../../src/plan/provider.ts';
import { DEFAULT_TARGET_OPTIONS, type TargetOptions } from '../../src/runtime/targets.ts';

const roots: string[] = [];
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

function node(files: Record<string, Uint8Array | string>): HostFs {
  const root = mkdtempSync(join(tmpdir(), 'nrc-doctor-'));
  roots.push(root);
  for (const [path, bytes] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), bytes);
  }
  return new HostFs(root);
}

const provider: TargetOptions = { ...DEFAULT_TARGET_OPTIONS, kubeletCredentials: 'provider' };
const about = (host: HostFs, o: TargetOptions = provider) => diagnose(host, o).filter((f) => f.what.includes('provider') || f.what.includes(PROVIDER_RESPONSE_PATH));

describe('doctor in provider mode', () => {
  it('says where the credentials are served from, and that the plugin has nothing before the first apply', () => {
    const findings = about(node({}));
    expect(findings.map((f) => f.level)).toEqual(['info', 'info']);
    expect(findings[1]?.what).toContain('does not exist yet');
  });

  it('is quiet about a whole state file and reports a damaged one with its code', () => {
    const body = renderProviderResponse(new Map([['reg.example.com', { username: 'u', password: 'p' }]]));
    const digest = renderProviderDigest(PROVIDER_RESPONSE_PATH, body);
    expect(about(node({ [PROVIDER_RESPONSE_PATH]: body, [`${PROVIDER_RESPONSE_PATH}.sha256`]: digest })).map((f) => f.level)).toEqual(['info']);
    const damaged = about(node({ [PROVIDER_RESPONSE_PATH]: body.subarray(0, 20), [`${PROVIDER_RESPONSE_PATH}.sha256`]: digest }));
    expect(damaged.map((f) => [f.level, f.code])).toEqual([['info', undefined], ['error', 'NRC_E_PROVIDER_STATE_CORRUPT']]);
  });

  it('says nothing about a provider in config-json mode', () => {
    expect(about(node({}), DEFAULT_TARGET_OPTIONS)).toEqual([]);
  });
});
