// A client for the testenv oracles' `batch` mode: one long-lived process, JSON lines in and out.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { goTool } from './go-tools.ts';

export class OracleProcess {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly waiting = new Map<number, (v: unknown) => void>();
  private nextId = 1;
  private stderr = '';

  constructor(readonly tool: string) {
    this.child = spawn(goTool(tool), ['batch'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const msg = JSON.parse(line) as { id: number };
      this.waiting.get(msg.id)?.(msg);
      this.waiting.delete(msg.id);
    });
    this.child.on('exit', (code) => {
      for (const resolve of this.waiting.values()) resolve({ requestError: `${tool} exited ${code}: ${this.stderr}` });
      this.waiting.clear();
    });
  }

  request<T>(req: Record<string, unknown>): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, (v) => {
        const r = v as { requestError?: string };
        if (r.requestError) reject(new Error(`${this.tool}: ${r.requestError}`));
        else resolve(v as T);
      });
      this.child.stdin.write(`${JSON.stringify({ ...req, id })}\n`);
    });
  }

  close(): void {
    this.child.stdin.end();
  }
}

export interface KubeletCred {
  readonly username: string;
  readonly password: string;
}

export interface KubeletAnswer {
  readonly file: string | null;
  readonly error: string | null;
  readonly images: Record<string, KubeletCred[]>;
  readonly imageErrors: Record<string, string>;
}

/** The kubelet's --image-credential-provider-config and --image-credential-provider-bin-dir. */
export interface ProviderPlugin {
  readonly config: string;
  readonly binDir: string;
}

export interface ProviderAnswer extends KubeletAnswer {
  readonly provider: {
    /** RegisterCredentialProviderPlugins failed: the kubelet would exit at start. */
    readonly registerError: string | null;
    /** Plugin executions during the request (the kubelet's plugin duration histogram count). */
    readonly execs: number;
    /** Failed executions (non-zero exit, timeout): kubelet_credential_provider_plugin_errors_total. */
    readonly errors: number;
    /** What the kubelet's code logged (klog): e.g. a response it could not decode. */
    readonly log: string[];
  };
}

/** kubelet-oracle: what the kubelet's own keyring yields. */
export class KubeletOracle {
  private readonly p = new OracleProcess('kubelet-oracle');

  /** The node's files under hostRoot, read in the kubelet's search order (root dir, cwd, $HOME, /). */
  node(hostRoot: string, images: readonly string[], secrets: readonly { data: string }[] = []): Promise<KubeletAnswer> {
    return this.p.request({ op: 'node', hostRoot, rootDir: '/var/lib/kubelet', home: '/root', cwd: '/', images, ...(secrets.length ? { secrets } : {}) });
  }

  /**
   * The node's files under hostRoot (as `node`) AND a credential provider plugin, through the
   * kubelet's own plugin path: `config` (CredentialProviderConfig) and `binDir` registered once
   * per oracle worker as the kubelet does at start, the plugin exec'd per lookup, config.json
   * credentials first, then the plugin's.
   */
  provider(hostRoot: string, images: readonly string[], plugin: ProviderPlugin): Promise<ProviderAnswer> {
    return this.p.request({ op: 'provider', hostRoot, rootDir: '/var/lib/kubelet', home: '/root', cwd: '/', images, providerConfig: plugin.config, providerBinDir: plugin.binDir });
  }

  /** The same bytes as an imagePullSecret of type kubernetes.io/dockerconfigjson. */
  secret(data: string, images: readonly string[]): Promise<KubeletAnswer> {
    return this.p.request({ op: 'secret', data, type: 'kubernetes.io/dockerconfigjson', images });
  }

  close(): void {
    this.p.close();
  }
}

export interface ContainerdHost {
  readonly scheme: string;
  readonly host: string;
  readonly path: string;
  readonly capabilities: string[];
  readonly skipVerify: boolean;
  readonly caSubjects: string[];
  readonly clientCerts: number;
  readonly header: Record<string, string[]>;
}

export interface ContainerdAnswer {
  readonly error: string | null;
  readonly dir: string | null;
  readonly hosts: ContainerdHost[];
  readonly logs: { level: string; msg: string }[];
}

/** containerd1-oracle (1.6.20) or containerd2-oracle (2.2.9): the hosts its resolver will try. */
export class ContainerdOracle {
  private readonly p: OracleProcess;

  constructor(readonly tool: 'containerd1-oracle' | 'containerd2-oracle') {
    this.p = new OracleProcess(tool);
  }

  async hosts(hostsDir: string, refHosts: readonly string[], mode?: 'cri' | 'transfer' | 'local'): Promise<Record<string, ContainerdAnswer>> {
    const r = await this.p.request<{ results: Record<string, ContainerdAnswer> }>({ op: 'hosts', hostsDir, hosts: refHosts, ...(mode ? { mode } : {}) });
    return r.results;
  }

  close(): void {
    this.p.close();
  }
}
