/**
 * One ECR registry as the Registry-CR source hands it to the ECR source
 * (`spec.awsIamUser` / `spec.awsIamRole`). `host` is the registry hostname the images use.
 * Key rotation: the caller calls `setRegistries` again with the new keys.
 */
export type EcrRegistrySpec = { host: string } & (
  | { kind: 'awsIamUser'; accessKeyId: string; secretAccessKey: string }
  | { kind: 'awsIamRole'; roleArn: string; audience: string }
);
