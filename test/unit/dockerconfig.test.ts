import { describe, expect, it } from 'vitest';
import { parseDockerConfig } from '../../src/sources/dockerconfig.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const parse = (doc: unknown) => parseDockerConfig(JSON.stringify(doc), 'test');

describe('parseDockerConfig', () => {
  it('reads auth, username/password and identitytoken entries', () => {
    const s = parse({
      auths: {
        'a.example.com': { auth: b64('alice:pa:ss') },
        'b.example.com': { username: 'bob', password: 'secret' },
        'c.example.com': { identitytoken: 'tok' },
        'd.example.com': { auth: b64('dave:pw').replace(/=+$/, '') },
      },
    });
    expect(s.ok).toBe(true);
    expect(s.errors).toEqual([]);
    expect(s.credentials.map((c) => [c.key, c.username, c.password, c.identityToken])).toEqual([
      ['a.example.com', 'alice', 'pa:ss', undefined],
      ['b.example.com', 'bob', 'secret', undefined],
      ['c.example.com', '', '', 'tok'],
      ['d.example.com', 'dave', 'pw', undefined],
    ]);
  });

  it('reads the legacy .dockercfg shape', () => {
    const s = parse({ 'https://legacy.example.com': { auth: b64('u:p'), email: 'x@example.com' } });
    expect(s.credentials).toMatchObject([{ key: 'legacy.example.com', username: 'u', password: 'p' }]);
  });

  it('rejects bad entries one by one and keeps the good ones', () => {
    const s = parse({
      auths: {
        'good.example.com': { auth: b64('u:p') },
        'bad base64.example.com': { auth: b64('u:p') },
        'nocolon.example.com': { auth: b64('justuser') },
        'badb64.example.com': { auth: '!!!not-base64' },
        'empty.example.com': {},
        'notobject.example.com': 'x',
        'number.example.com': { username: 'u', password: 5 },
        'ctrl.example.com': { username: 'u', password: 'p\nq' },
      },
    });
    expect(s.ok).toBe(true);
    expect(s.credentials.map((c) => c.key)).toEqual(['good.example.com']);
    expect(s.errors.map((e) => e.code).sort()).toEqual([
      'NRC_E_AUTH_BASE64',
      'NRC_E_AUTH_MISSING',
      'NRC_E_AUTH_NO_COLON',
      'NRC_E_CONTROL_CHARACTERS',
      'NRC_E_ENTRY_NOT_OBJECT',
      'NRC_E_FIELD_TYPE',
      'NRC_E_REGISTRY_HOST_INVALID',
    ]);
  });

  it('reports two keys for one registry with different credentials, keeping the first in key order', () => {
    const s = parse({ auths: { 'https://reg.example.com': { auth: b64('a:1') }, 'reg.example.com': { auth: b64('b:2') } } });
    expect(s.credentials).toMatchObject([{ key: 'reg.example.com', username: 'a' }]);
    expect(s.errors.map((e) => e.code)).toEqual(['NRC_E_DUPLICATE_REGISTRY']);
  });

  it('accepts the same credential under two spellings of one key silently', () => {
    const s = parse({ auths: { 'index.docker.io': { auth: b64('a:1') }, 'https://index.docker.io/v1/': { auth: b64('a:1') } } });
    expect(s.errors).toEqual([]);
    expect(s.credentials).toHaveLength(1);
  });

  it('keeps docker.io and the Docker Hub fallback key apart, as the kubelet does', () => {
    const s = parse({ auths: { 'docker.io': { auth: b64('a:1') }, 'https://index.docker.io/v1/': { auth: b64('b:2') } } });
    expect(s.errors).toEqual([]);
    expect(s.credentials.map((c) => c.key)).toEqual(['docker.io', 'https://index.docker.io/v1/']);
  });

  it('reads field names in any case and the last of repeated members, as Go does', () => {
    const s = parse({ Auths: { 'reg.example.com': { Username: 'u', PASSWORD: 'p' } } });
    expect(s.credentials).toMatchObject([{ key: 'reg.example.com', username: 'u', password: 'p' }]);
    const t = parseDockerConfig('{"auths":{"a.example.com":{"auth":"' + b64('x:1') + '"}},"AUTHS":{"b.example.com":{"auth":"' + b64('y:2') + '"}}}', 'test');
    expect(t.credentials.map((c) => c.key)).toEqual(['a.example.com', 'b.example.com']);
  });

  it('decodes "auth" with the kubelet\'s base64 rules: padded or not, wrapped lines, no spaces', () => {
    const ok = parse({ auths: { 'a.example.com': { auth: 'dTpw' }, 'b.example.com': { auth: 'dTpwcQ' }, 'c.example.com': { auth: 'dTpw\ncQ==' } } });
    expect(ok.errors).toEqual([]);
    expect(ok.credentials.map((c) => c.password)).toEqual(['p', 'pq', 'pq']);
    const bad = parse({ auths: { 'a.example.com': { auth: ' dTpw' }, 'b.example.com': { auth: 'dTpwcQ=' } } });
    expect(bad.errors.map((e) => e.code)).toEqual(['NRC_E_AUTH_BASE64', 'NRC_E_AUTH_BASE64']);
  });

  it('reads only "auths" of a .dockerconfigjson, and the bare map of a .dockercfg, as the kubelet does', () => {
    const legacyShape = JSON.stringify({ 'reg.example.com': { auth: b64('u:p') } });
    expect(parseDockerConfig(legacyShape, 'test', 'config.json').credentials).toEqual([]);
    expect(parseDockerConfig(legacyShape, 'test', 'dockercfg').credentials).toHaveLength(1);
    expect(parseDockerConfig(legacyShape, 'test').credentials).toHaveLength(1);
  });

  it.each([
    ['not JSON', '{"auths": ', 'NRC_E_INPUT_NOT_JSON'],
    ['an array', '[]', 'NRC_E_INPUT_SHAPE'],
    ['auths not an object', '{"auths": []}', 'NRC_E_INPUT_SHAPE'],
  ])('marks %s as unreadable as a whole (ok=false)', (_name, text, code) => {
    const s = parseDockerConfig(text, 'test');
    expect(s.ok).toBe(false);
    expect(s.errors.map((e) => e.code)).toEqual([code]);
  });

  it('never puts a secret into an error message', () => {
    const secret = 'hunter2-very-secret';
    const s = parse({ auths: { 'x.example.com': { username: 'u', password: `${secret}\u0000` }, 'y.example.com': { auth: secret } } });
    expect(s.errors).toHaveLength(2);
    for (const e of s.errors) expect(e.message).not.toContain(secret);
  });
});
