import { AgentError } from '../../errors.ts';
import { type KubeAccess, type KubeClient, kubeClientOf } from '../kube-client.ts';
import type { ServiceAccountTokenProvider } from './aws.ts';

export interface KubernetesServiceAccountTokenOptions {
  readonly kubeConfig: KubeAccess;
  /** The account the roles' trust policies name in `sub` (default okteto/okteto). */
  readonly namespace?: string;
  readonly serviceAccount?: string;
  /** TokenRequest's minimum is 600 s; the token is used once, right away. */
  readonly expirationSeconds?: number;
}

/** Service-account tokens for an audience through the TokenRequest API (RBAC: create serviceaccounts/token on that one account). */
export class KubernetesServiceAccountTokenProvider implements ServiceAccountTokenProvider {
  private readonly client: KubeClient;
  private readonly namespace: string;
  private readonly name: string;
  private readonly expirationSeconds: number;

  constructor(opts: KubernetesServiceAccountTokenOptions) {
    this.client = kubeClientOf(opts.kubeConfig);
    this.namespace = opts.namespace ?? 'okteto';
    this.name = opts.serviceAccount ?? 'okteto';
    this.expirationSeconds = opts.expirationSeconds ?? 600;
  }

  async getToken(audience: string): Promise<{ token: string; expiresAt: Date }> {
    const subject = `serviceaccount ${this.namespace}/${this.name}`;
    try {
      const out = await this.client.request<{ status?: { token?: string; expirationTimestamp?: string } } | undefined>(
        'POST',
        `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/serviceaccounts/${encodeURIComponent(this.name)}/token`,
        { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences: [audience], expirationSeconds: this.expirationSeconds } } },
      );
      const token = out?.status?.token;
      if (!token) throw new AgentError('NRC_E_ECR_SA_TOKEN_FAILED', { subject, detail: '(the TokenRequest returned no token)' });
      const exp = out?.status?.expirationTimestamp;
      return { token, expiresAt: exp ? new Date(exp) : new Date(Date.now() + this.expirationSeconds * 1000) };
    } catch (err) {
      if (err instanceof AgentError) throw err;
      const status = (err as { code?: unknown }).code;
      throw new AgentError('NRC_E_ECR_SA_TOKEN_FAILED', {
        subject,
        ...(typeof status === 'number' ? { detail: `(HTTP ${status})` } : {}),
        cause: err,
      });
    }
  }
}
