// Which docker config file the kubelet reads today: the first file of its search path that its
// keyring can read (model/kubelet-config.ts, the same reading the planner seeds config.json from).
import { readKubeletFile } from '../model/kubelet-config.ts';
import type { FileState } from '../model/host-state.ts';

/** The file of the search path (in its order) the kubelet reads today, if any. */
export function kubeletReads(searchPath: readonly string[], stat: (hostPath: string) => FileState): string | undefined {
  // The kubelet takes the first file it can read: one undecodable entry makes it skip a file.
  return searchPath.find((p) => {
    const st = stat(p);
    return st.kind === 'file' && readKubeletFile(st.bytes, p.endsWith('.dockercfg')).readable;
  });
}
