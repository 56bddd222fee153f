// The uninstall hook's wait (templates/cleanup-hook.yaml), with the pod's own ServiceAccount:
//   agents-gone     until no agent pod is left (a running agent would re-apply after cleanup)
//   nodes-restored  until the cleanup DaemonSet is Ready on every node it was scheduled to
// Exits non-zero on an API error it cannot retry; the Job's activeDeadlineSeconds bounds it.
import { readFileSync } from 'node:fs';

const what = process.argv[2];
const ns = process.env.NAMESPACE;
const sa = '/var/run/secrets/kubernetes.io/serviceaccount';
const api = `https://${process.env.KUBERNETES_SERVICE_HOST}:${process.env.KUBERNETES_SERVICE_PORT}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function get(path) {
  // The token is re-read each time: the kubelet rotates it.
  const res = await fetch(api + path, { headers: { authorization: `Bearer ${readFileSync(`${sa}/token`, 'utf8').trim()}` } });
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${(await res.text()).slice(0, 300)}`);
  return res.json();
}

async function agentsGone() {
  const sel = encodeURIComponent('app.kubernetes.io/name=node-registry-credentials,app.kubernetes.io/component=agent');
  const pods = await get(`/api/v1/namespaces/${ns}/pods?labelSelector=${sel}`);
  console.log(`agent pods left: ${pods.items.length}`);
  return pods.items.length === 0;
}

async function nodesRestored() {
  const ds = await get(`/apis/apps/v1/namespaces/${ns}/daemonsets/node-registry-credentials-cleanup`);
  const s = ds.status ?? {};
  const want = s.desiredNumberScheduled ?? 0;
  console.log(`cleanup done on ${s.numberReady ?? 0} of ${want} nodes`);
  return (s.observedGeneration ?? 0) >= ds.metadata.generation && (s.updatedNumberScheduled ?? 0) === want && (s.numberReady ?? 0) === want;
}

const check = { 'agents-gone': agentsGone, 'nodes-restored': nodesRestored }[what];
if (!check) {
  console.error(`usage: wait.mjs agents-gone|nodes-restored`);
  process.exit(2);
}
for (;;) {
  try {
    if (await check()) break;
  } catch (err) {
    // 5xx and connection errors are retried; a 403 or 404 will not change: fail now.
    if (/: 40[34] /.test(String(err.message))) {
      console.error(err.message);
      process.exit(1);
    }
    console.warn(String(err.message));
  }
  await sleep(2000);
}
console.log(what === 'agents-gone' ? 'no agent pod left' : 'every node has restored its files');
