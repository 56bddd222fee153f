// Which docker config file the kubelet reads, and what it takes from it: its keyring reads the
// first file of its search path that parses, `.dockercfg` being the registry map itself and
// config.json carrying it under "auths".
import type { FileState } from '../model/host-state.ts';
import { isJsonObject, parseJsonObject, type JsonObject } from './json.ts';

/** The registry map the kubelet would take from this file, or undefined when it would not use it. */
export function kubeletAuths(path: string, bytes: Uint8Array): JsonObject | undefined {
  const doc = parseJsonObject(bytes);
  if (!doc) return undefined;
  const auths = path.endsWith('.dockercfg') ? doc : doc['auths'];
  return isJsonObject(auths) ? auths : undefined;
}

/** The file of the search path (in its order) the kubelet reads today, if any. */
export function kubeletReads(searchPath: readonly string[], stat: (hostPath: string) => FileState): string | undefined {
  return searchPath.find((p) => {
    const st = stat(p);
    return st.kind === 'file' && kubeletAuths(p, st.bytes) !== undefined;
  });
}
