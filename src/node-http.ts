// node:http, loaded through require. An ES import of it builds the module namespace, which reads
// its lazy WebSocket getter and so loads undici's WebSocket: ~12 MiB of RSS (docs/benchmarks.md).
import { createRequire } from 'node:module';

export const http = createRequire(import.meta.url)('node:http') as typeof import('node:http');
