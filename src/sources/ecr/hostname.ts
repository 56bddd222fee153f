import { AgentError } from '../../errors.ts';
import { quoteSubject } from '../../model/registry-key.ts';

export type AwsPartition = 'aws' | 'aws-cn' | 'aws-us-gov' | 'aws-iso' | 'aws-iso-b' | 'aws-iso-e' | 'aws-iso-f' | 'aws-eusc';

/** What an ECR registry hostname says about where its tokens come from. */
export interface EcrHost {
  /** The hostname as the images use it (lower case): the auth entry key. */
  readonly host: string;
  /** The registry's account; undefined for ECR Public. */
  readonly accountId: string | undefined;
  readonly region: string;
  readonly partition: AwsPartition;
  readonly fips: boolean;
  readonly dualStack: boolean;
  /** The SigV4 signing name of the API that issues its tokens. */
  readonly service: 'ecr' | 'ecr-public';
}

// Private ECR, every partition (see docs/ecr.md). `dkr-ecr` and `.on.aws` are the dual-stack forms.
const PRIVATE_ECR =
  /^(\d{12})\.dkr[.-]ecr(-fips)?\.([a-z]{2,4}(?:-[a-z0-9]+)*-\d{1,2})\.(amazonaws\.(?:com|com\.cn|eu)|on\.(?:aws|amazonwebservices\.com\.cn)|sc2s\.sgov\.gov|c2s\.ic\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)$/;

const SUFFIX_PARTITION: Record<string, AwsPartition> = {
  'amazonaws.com': 'aws',
  'on.aws': 'aws',
  'amazonaws.com.cn': 'aws-cn',
  'on.amazonwebservices.com.cn': 'aws-cn',
  'amazonaws.eu': 'aws-eusc',
  'c2s.ic.gov': 'aws-iso',
  'sc2s.sgov.gov': 'aws-iso-b',
  'cloud.adc-e.uk': 'aws-iso-e',
  'csp.hci.ic.gov': 'aws-iso-f',
};

function invalid(raw: string, detail: string): AgentError {
  return new AgentError('NRC_E_ECR_HOST_INVALID', { subject: quoteSubject(raw), detail });
}

/**
 * Parses an ECR registry hostname into account, region and partition. The region decides
 * where GetAuthorizationToken is called; a token from another region does not work.
 */
export function parseEcrHost(raw: string): EcrHost | AgentError {
  if (typeof raw !== 'string' || raw.length === 0) return invalid(String(raw), 'The hostname is empty.');
  const host = raw.trim().toLowerCase().replace(/\.$/, '');
  if (host.includes('/') || host.includes(':')) {
    return invalid(raw, 'Give the bare hostname, without scheme, port or path.');
  }
  if (host === 'public.ecr.aws') {
    return { host, accountId: undefined, region: 'us-east-1', partition: 'aws', fips: false, dualStack: false, service: 'ecr-public' };
  }
  const m = PRIVATE_ECR.exec(host);
  if (!m) return invalid(raw, 'It is not <account>.dkr.ecr.<region>.amazonaws.com or another ECR hostname form.');
  const [, accountId, fips, region, suffix] = m as unknown as [string, string, string | undefined, string, string];
  let partition = SUFFIX_PARTITION[suffix];
  if (partition === undefined) return invalid(raw, 'Unknown AWS domain.');
  // GovCloud shares the commercial domain; only the region tells them apart.
  if (partition === 'aws' && region.startsWith('us-gov-')) partition = 'aws-us-gov';
  if ((partition === 'aws-cn') !== region.startsWith('cn-')) {
    return invalid(raw, 'The region does not belong to the domain (China regions use .amazonaws.com.cn).');
  }
  return {
    host,
    accountId,
    region,
    partition,
    fips: fips !== undefined,
    dualStack: suffix.startsWith('on.'),
    service: 'ecr',
  };
}

/** True when the name looks like an ECR registry (for the default-chain option and doctor). */
export function isEcrHost(raw: string): boolean {
  return !(parseEcrHost(raw) instanceof AgentError);
}
