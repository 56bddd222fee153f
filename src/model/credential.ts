import type { AgentError } from '../errors.ts';

/**
 * What a source yields for one registry. `key` is the normalized kubelet key
 * (`host[:port][/path]`, see registry-key.ts); `host` is its `host[:port]` part.
 */
export interface RegistryCredential {
  readonly key: string;
  readonly host: string;
  readonly username: string;
  readonly password: string;
  /** Set for token-based registries (`identitytoken` in docker config). */
  readonly identityToken?: string;
  /** Which source produced it, e.g. "file:/path", "secret:okteto/okteto-dockerconfig-static", "ecr". */
  readonly source: string;
  /** When the credential stops working (ECR tokens); undefined means no expiry. */
  readonly expiresAt?: Date;
  /**
   * Set for a namespace-scoped credential (model/scope.ts): the namespaces whose pods may pull with
   * it, resolved and sorted. Such a credential never goes to a node-wide file. Undefined: node-wide.
   */
  readonly namespaces?: readonly string[];
  /**
   * The static Secret's scopes only: a label selector that the broker resolves (its scoped.json
   * `selectors`); the merge adds the namespaces it matched to `namespaces`.
   */
  readonly namespaceSelector?: string;
}

/** One source's current view: every credential it provides plus per-entry errors. */
export interface SourceSnapshot {
  readonly source: string;
  readonly credentials: readonly RegistryCredential[];
  readonly errors: readonly AgentError[];
  /**
   * false when the source could not read its input at all (not JSON, deleted Secret
   * that is still expected...). The reconciler then keeps the last good snapshot.
   */
  readonly ok: boolean;
  /** The broker's Secret: namespace selectors it resolved (selector → namespaces), for the static Secret's scopes. */
  readonly selectors?: Readonly<Record<string, readonly string[]>>;
}

/**
 * A producer of credentials. Sources never touch the host: they only call `emit`
 * with their complete current snapshot whenever it changes.
 */
export interface Source {
  readonly name: string;
  start(emit: (snapshot: SourceSnapshot) => void): Promise<void>;
  stop(): Promise<void>;
}
