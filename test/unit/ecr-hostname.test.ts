import { describe, expect, it } from 'vitest';
import { AgentError } from '../../src/errors.ts';
import { parseEcrHost } from '../../src/sources/ecr/hostname.ts';

describe('parseEcrHost: region and partition come from the hostname', () => {
  const ok: Array<[string, { accountId?: string; region: string; partition: string; fips: boolean; dualStack: boolean; service: string }]> = [
    ['123456789012.dkr.ecr.us-east-2.amazonaws.com', { accountId: '123456789012', region: 'us-east-2', partition: 'aws', fips: false, dualStack: false, service: 'ecr' }],
    ['123456789012.dkr.ecr.eu-central-1.amazonaws.com', { region: 'eu-central-1', partition: 'aws', fips: false, dualStack: false, service: 'ecr' }],
    ['123456789012.dkr.ecr.ap-southeast-5.amazonaws.com', { region: 'ap-southeast-5', partition: 'aws', fips: false, dualStack: false, service: 'ecr' }],
    ['123456789012.dkr.ecr-fips.us-west-2.amazonaws.com', { region: 'us-west-2', partition: 'aws', fips: true, dualStack: false, service: 'ecr' }],
    ['123456789012.dkr-ecr.us-west-2.on.aws', { region: 'us-west-2', partition: 'aws', fips: false, dualStack: true, service: 'ecr' }],
    ['123456789012.dkr-ecr-fips.us-east-1.on.aws', { region: 'us-east-1', partition: 'aws', fips: true, dualStack: true, service: 'ecr' }],
    ['123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn', { region: 'cn-north-1', partition: 'aws-cn', fips: false, dualStack: false, service: 'ecr' }],
    ['123456789012.dkr-ecr.cn-northwest-1.on.amazonwebservices.com.cn', { region: 'cn-northwest-1', partition: 'aws-cn', fips: false, dualStack: true, service: 'ecr' }],
    ['123456789012.dkr.ecr.us-gov-west-1.amazonaws.com', { region: 'us-gov-west-1', partition: 'aws-us-gov', fips: false, dualStack: false, service: 'ecr' }],
    ['123456789012.dkr.ecr-fips.us-gov-east-1.amazonaws.com', { region: 'us-gov-east-1', partition: 'aws-us-gov', fips: true, dualStack: false, service: 'ecr' }],
    ['123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov', { region: 'us-iso-east-1', partition: 'aws-iso', fips: false, dualStack: false, service: 'ecr' }],
    ['123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov', { region: 'us-isob-east-1', partition: 'aws-iso-b', fips: false, dualStack: false, service: 'ecr' }],
    ['123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk', { region: 'eu-isoe-west-1', partition: 'aws-iso-e', fips: false, dualStack: false, service: 'ecr' }],
    ['123456789012.dkr.ecr.us-isof-south-1.csp.hci.ic.gov', { region: 'us-isof-south-1', partition: 'aws-iso-f', fips: false, dualStack: false, service: 'ecr' }],
    ['123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu', { region: 'eusc-de-east-1', partition: 'aws-eusc', fips: false, dualStack: false, service: 'ecr' }],
    ['public.ecr.aws', { region: 'us-east-1', partition: 'aws', fips: false, dualStack: false, service: 'ecr-public' }],
  ];
  it.each(ok)('%s', (host, want) => {
    const got = parseEcrHost(host);
    expect(got).not.toBeInstanceOf(AgentError);
    expect(got).toMatchObject({ host, ...want });
  });

  it('uses the lower-case hostname as the auth key', () => {
    expect(parseEcrHost('123456789012.DKR.ECR.US-EAST-1.AMAZONAWS.COM')).toMatchObject({
      host: '123456789012.dkr.ecr.us-east-1.amazonaws.com',
      region: 'us-east-1',
    });
  });

  const bad: Array<[string, string]> = [
    ['', 'empty'],
    ['registry.example.com', 'not ECR'],
    ['12345678901.dkr.ecr.us-east-1.amazonaws.com', '11-digit account'],
    ['123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example', 'suffix appended'],
    ['123456789012.dkr.ecr.us-east-1.amazonaws.com:443', 'with port'],
    ['https://123456789012.dkr.ecr.us-east-1.amazonaws.com', 'with scheme'],
    ['123456789012.dkr.ecr.us-east-1.amazonaws.com/repo', 'with path'],
    ['123456789012.dkr.ecr..amazonaws.com', 'no region'],
    ['123456789012.dkr.ecr.cn-north-1.amazonaws.com', 'China region on the commercial domain'],
    ['123456789012.dkr.ecr.us-east-1.amazonaws.com.cn', 'commercial region on the China domain'],
    ['123456789012.ecr.us-east-1.amazonaws.com', 'missing dkr'],
    ['public.ecr.aws.example.com', 'not ECR Public'],
  ];
  it.each(bad)('rejects %j (%s) with NRC_E_ECR_HOST_INVALID', (host) => {
    const got = parseEcrHost(host);
    expect(got).toBeInstanceOf(AgentError);
    expect((got as AgentError).code).toBe('NRC_E_ECR_HOST_INVALID');
  });
});
