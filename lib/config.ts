/**
 * One typed configuration for every Sluice process, read from the environment with defaults.
 * The same names are used by the local runtime, the task units, the Lambda handlers and the tests.
 */
export interface SluiceConfig {
  /** AWS endpoint override (LocalStack, moto). Undefined means real AWS. */
  endpoint: string | undefined;
  region: string;
  /** Static credentials, used only when an endpoint is set and no AWS credentials are present. */
  credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** DynamoDB table holding all metadata. */
  table: string;
  /** S3 bucket for snapshots, manifests, sink staging and output. */
  bucket: string;
  /** Prefix of every queue name this installation creates (IAM is scoped by it). */
  queuePrefix: string;
}

export const DEFAULTS = {
  region: 'us-east-1',
  table: 'sluice-metadata',
  bucket: 'sluice-data',
  queuePrefix: 'sluice',
} as const;

const NAME_PATTERN = /^[A-Za-z0-9_.-]+$/;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): SluiceConfig {
  const endpoint = env.AWS_ENDPOINT_URL?.trim() || undefined;
  if (endpoint !== undefined) {
    try {
      const url = new URL(endpoint);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('protocol');
    } catch {
      throw new ConfigError(`AWS_ENDPOINT_URL is not an http(s) URL: '${endpoint}'`);
    }
  }
  const hasCredentials = Boolean(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY);
  const config: SluiceConfig = {
    endpoint,
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || DEFAULTS.region,
    credentials:
      endpoint !== undefined && !hasCredentials && !env.AWS_PROFILE
        ? { accessKeyId: 'test', secretAccessKey: 'test' }
        : undefined,
    table: env.SLUICE_TABLE || DEFAULTS.table,
    bucket: env.SLUICE_BUCKET || DEFAULTS.bucket,
    queuePrefix: env.SLUICE_QUEUE_PREFIX || DEFAULTS.queuePrefix,
  };
  for (const [key, value] of [
    ['SLUICE_TABLE', config.table],
    ['SLUICE_BUCKET', config.bucket],
    ['SLUICE_QUEUE_PREFIX', config.queuePrefix],
  ] as const) {
    if (!NAME_PATTERN.test(value)) throw new ConfigError(`${key} has characters AWS does not allow: '${value}'`);
  }
  if (config.queuePrefix.length > 20) throw new ConfigError(`SLUICE_QUEUE_PREFIX is longer than 20 characters: '${config.queuePrefix}'`);
  return config;
}

/** Environment variables that carry a config to a child process. */
export function configToEnv(config: SluiceConfig): Record<string, string> {
  const env: Record<string, string> = {
    AWS_REGION: config.region,
    SLUICE_TABLE: config.table,
    SLUICE_BUCKET: config.bucket,
    SLUICE_QUEUE_PREFIX: config.queuePrefix,
  };
  if (config.endpoint) env.AWS_ENDPOINT_URL = config.endpoint;
  if (config.credentials) {
    env.AWS_ACCESS_KEY_ID = config.credentials.accessKeyId;
    env.AWS_SECRET_ACCESS_KEY = config.credentials.secretAccessKey;
  }
  return env;
}
