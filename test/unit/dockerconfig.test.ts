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

  it('accepts the same credential under two aliases silently', () => {
    const s = parse({ auths: { 'docker.io': { auth: b64('a:1') }, 'https://index.docker.io/v1/': { auth: b64('a:1') } } });
    expect(s.errors).toEqual([]);
    expect(s.credentials).toHaveLength(1);
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
