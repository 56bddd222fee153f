import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { collate } from '../../src/model/collate.ts';

// The written config.json is sorted with collate(): it must order exactly as localeCompare did, or
// every node would rewrite its files after an upgrade.
const printable = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i));
const hostChars = [...'abcxyzABCXYZ0189.:-_/'];
const sign = (n: number): number => Math.sign(n);

describe('collate', () => {
  it('orders registry keys and hosts exactly as localeCompare', () => {
    const key = fc.string({ unit: fc.constantFrom(...hostChars), maxLength: 12 });
    fc.assert(fc.property(key, key, (a, b) => {
      expect(sign(collate(a, b))).toBe(sign(a.localeCompare(b)));
    }), { numRuns: 20_000 });
  });

  it('orders any printable ASCII exactly as localeCompare', () => {
    const s = fc.string({ unit: fc.constantFrom(...printable), maxLength: 8 });
    fc.assert(fc.property(s, s, (a, b) => {
      expect(sign(collate(a, b))).toBe(sign(a.localeCompare(b)));
    }), { numRuns: 20_000 });
  });

  it('sorts every pair of printable characters as localeCompare does', () => {
    for (const a of printable) for (const b of printable) for (const [x, y] of [[a, b], [a + 'a', b], [a, b + 'A'], ['x' + a, 'X' + b]]) expect(sign(collate(x!, y!)), `${x} vs ${y}`).toBe(sign(x!.localeCompare(y!)));
  });

  it('falls back to localeCompare for anything else (controls, non-ASCII)', () => {
    const s = fc.string({ unit: fc.constantFrom('a', 'B', '.', '\u0000', '\t', '\u007f', 'é', 'E\u0301', 'ß', 'ı', '\u{1F600}'), maxLength: 6 });
    fc.assert(fc.property(s, s, (a, b) => {
      expect(sign(collate(a, b))).toBe(sign(a.localeCompare(b)));
    }));
  });

  it('sorts a config.json-like key list the same', () => {
    const keys = ['https://index.docker.io/v1/', 'registry.example.com:5000', 'Registry.example.com', 'registry-1.example.com', 'registry_2.example.com', '123456789012.dkr.ecr.eu-west-1.amazonaws.com', 'ghcr.io/org', 'ghcr.io', 'localhost:5000'];
    expect([...keys].sort(collate)).toEqual([...keys].sort((a, b) => a.localeCompare(b)));
  });
});
