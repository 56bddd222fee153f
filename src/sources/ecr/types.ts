/** A token the ECR source obtained, as it keeps it across restarts. */
export interface StoredToken {
  readonly username: string;
  readonly password: string;
  readonly expiresAt: number;
  /** Which credentials obtained it (a hash, never the credentials themselves). */
  readonly fingerprint: string;
}

/** Where the ECR source keeps its tokens across restarts; the file behind it is the host's (src/host/ecr-token-cache.ts). */
export interface TokenCache {
  /** Where the cache lives, for logs. */
  readonly location: string;
  /** A missing or unreadable cache is an empty one (`error` says why): the source just calls AWS again. */
  load(): Promise<{ tokens: Map<string, StoredToken>; error?: string }>;
  save(tokens: ReadonlyMap<string, StoredToken>): Promise<void>;
}

/**
 * One ECR registry as the Registry-CR source hands it to the ECR source
 * (`spec.awsIamUser` / `spec.awsIamRole`). `host` is the registry hostname the images use.
 * Key rotation: the caller calls `setRegistries` again with the new keys.
 */
export type EcrRegistrySpec = { host: string } & (
  | { kind: 'awsIamUser'; accessKeyId: string; secretAccessKey: string }
  | { kind: 'awsIamRole'; roleArn: string; audience: string }
);
