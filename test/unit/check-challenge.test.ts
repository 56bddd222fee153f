import { describe, expect, test } from 'vitest';
import { parseChallenges } from '../../src/check/credential-check.ts';

describe('WWW-Authenticate parsing for the credential check', () => {
  test("reads Docker Hub's Bearer challenge with realm and service", () => {
    expect(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io' } },
    ]);
  });

  test("reads the distribution registry's htpasswd Basic challenge", () => {
    expect(parseChallenges('Basic realm="Registry Realm"')).toEqual([{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  });

  test('keeps Basic and Bearer from several challenges, spaces and unquoted values, and drops unknown schemes', () => {
    expect(parseChallenges(['Negotiate', 'Bearer realm=https://r.example/t , service=svc, scope="repository:a/b:pull"', 'basic realm="x, y"'])).toEqual([
      { scheme: 'bearer', params: { realm: 'https://r.example/t', service: 'svc', scope: 'repository:a/b:pull' } },
      { scheme: 'basic', params: { realm: 'x, y' } },
    ]);
  });

  test('a missing header has no challenge', () => {
    expect(parseChallenges(undefined)).toEqual([]);
  });
});
