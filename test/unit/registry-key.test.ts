import { describe, expect, it } from 'vitest';
import { AgentError } from '../../src/errors.ts';
import { DOCKER_HUB_KEY, normalizeRegistryKey, validateRegistryHost } from '../../src/model/registry-key.ts';

describe('normalizeRegistryKey reads keys the way the kubelet does', () => {
  it.each([
    ['registry.example.com', 'registry.example.com', 'registry.example.com'],
    ['https://registry.example.com', 'registry.example.com', 'registry.example.com'],
    ['http://registry.example.com/', 'registry.example.com', 'registry.example.com'],
    ['https://registry.example.com/v2/', 'registry.example.com', 'registry.example.com'],
    ['https://registry.example.com/v1/', 'registry.example.com', 'registry.example.com'],
    // The kubelet globs labels case-sensitively: the key keeps its case.
    ['Registry.Example.COM:5000', 'Registry.Example.COM:5000', 'registry.example.com:5000'],
    ['registry.example.com:5000/team/app', 'registry.example.com:5000/team/app', 'registry.example.com:5000'],
    ['https://registry.example.com/v2/team', 'registry.example.com/team', 'registry.example.com'],
    ['*.example.com', '*.example.com', '*.example.com'],
    ['*.dkr.ecr.*.amazonaws.com', '*.dkr.ecr.*.amazonaws.com', '*.dkr.ecr.*.amazonaws.com'],
    ['registry.example.com/team/', 'registry.example.com/team/', 'registry.example.com'],
    ['registry-1.docker.io', 'registry-1.docker.io', 'registry-1.docker.io'],
    ['https://registry-1.docker.io/v2/', 'registry-1.docker.io', 'registry-1.docker.io'],
    ['10.0.0.7:5000', '10.0.0.7:5000', '10.0.0.7:5000'],
    ['[fd00::1]:5000', '[fd00::1]:5000', '[fd00::1]:5000'],
    ['[FD00:0::1]', '[FD00:0::1]', '[fd00::1]'],
  ])('%s → key %s, host %s', (raw, key, host) => {
    const r = normalizeRegistryKey(raw);
    expect(r).not.toBeInstanceOf(AgentError);
    expect(r).toMatchObject({ key, host, dockerHub: false });
  });

  it.each(['https://index.docker.io/v1/', 'index.docker.io', 'http://index.docker.io/v2/'])(
    'reads %s as the Docker Hub fallback key, spelled as the docker CLI spells it',
    (raw) => {
      expect(normalizeRegistryKey(raw)).toEqual({ key: DOCKER_HUB_KEY, host: 'docker.io', dockerHub: true });
    },
  );

  it.each(['docker.io', 'https://docker.io/', 'https://docker.io/v2/'])('keeps %s as docker.io: it matches Docker Hub images before any fallback', (raw) => {
    expect(normalizeRegistryKey(raw)).toEqual({ key: 'docker.io', host: 'docker.io', dockerHub: true });
  });

  it.each([
    ['', 'empty'],
    ['../../etc/passwd', 'traversal'],
    ['/etc/passwd', 'absolute path'],
    ['registry.example.com/../../x', 'traversal in the path'],
    ['reg\u0000istry.example.com', 'NUL'],
    ['registry example.com', 'space'],
    ['registry.example.com:0', 'port 0'],
    ['registry.example.com:65536', 'port too big'],
    ['registry.example.com:abc', 'non-numeric port'],
    ['fd00::1', 'unbracketed IPv6'],
    ['ftp://registry.example.com', 'other scheme'],
    ['rеgistry.example.com', 'Cyrillic look-alike'],
    ['HTTPS://registry.example.com', 'upper-case scheme (the kubelet does not strip it)'],
    ['registry.example.com.', 'trailing dot'],
    ['registry.example.com?x', 'query'],
    ['registry.example.com/a%2fb', 'escape'],
    ['-bad.example.com', 'leading hyphen'],
    ['_default', "containerd's catch-all hosts directory"],
    ['my_registry.example.com', 'underscore'],
  ])('rejects %j (%s) with NRC_E_REGISTRY_HOST_INVALID', (raw) => {
    const r = normalizeRegistryKey(raw);
    expect(r).toBeInstanceOf(AgentError);
    expect((r as AgentError).code).toBe('NRC_E_REGISTRY_HOST_INVALID');
  });

  it('quotes and bounds the bad key in the error instead of echoing raw bytes', () => {
    const r = normalizeRegistryKey(`bad host\n${'x'.repeat(300)}`) as AgentError;
    expect(r.message).not.toContain('\n');
    expect(r.message.length).toBeLessThan(600);
  });
});

describe('validateRegistryHost', () => {
  it('returns the canonical host[:port]', () => {
    expect(validateRegistryHost('REG.example.com.:443')).toBe('reg.example.com:443');
  });
  it('refuses a path', () => {
    expect(validateRegistryHost('reg.example.com/x')).toBeInstanceOf(AgentError);
  });
});
