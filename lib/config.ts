/**
 * One typed configuration for every Sluice process, read from the environment with defaults.
 * The same names are used by the local runtime, the task units, the Lambda handlers and the tests.
 */
/** The services Sluice's ports reach. */
export type ServiceName = 'sqs' | 'dynamodb' | 's3' | 'kinesis';

/** Per-service endpoint variables (the AWS SDKs' own names); each overrides AWS_ENDPOINT_URL for its service. */
export const SERVICE_ENDPOINT_VARS: Record<ServiceName, string> = {
  sqs: 'AWS_ENDPOINT_URL_SQS',
  dynamodb: 'AWS_ENDPOINT_URL_DYNAMODB',
  s3: 'AWS_ENDPOINT_URL_S3',
  kinesis: 'AWS_ENDPOINT_URL_KINESIS',
};

export interface SluiceConfig {
  /** AWS endpoint override (LocalStack, moto). Undefined means real AWS. */
  endpoint: string | undefined;
  /** Per-service overrides (the embedded emulator runs one process per service). */
  endpoints: Partial<Record<ServiceName, string>>;
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

function endpointVar(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const endpoint = env[name]?.trim() || undefined;
  if (endpoint !== undefined) {
    try {
      const url = new URL(endpoint);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('protocol');
    } catch {
      throw new ConfigError(`${name} is not an http(s) URL: '${endpoint}'`);
    }
  }
  return endpoint;
}

/** The endpoint a service's client talks to: its own override, else the common one (else AWS). */
export function serviceEndpoint(config: Pick<SluiceConfig, 'endpoint' | 'endpoints'>, service: ServiceName): string | undefined {
  return config.endpoints[service] ?? config.endpoint;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): SluiceConfig {
  const endpoint = endpointVar(env, 'AWS_ENDPOINT_URL');
  const endpoints: Partial<Record<ServiceName, string>> = {};
  for (const [service, name] of Object.entries(SERVICE_ENDPOINT_VARS) as [ServiceName, string][]) {
    const value = endpointVar(env, name);
    if (value !== undefined) endpoints[service] = value;
  }
  const hasCredentials = Boolean(env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY);
  const emulated = endpoint !== undefined || Object.keys(endpoints).length > 0;
  const config: SluiceConfig = {
    endpoint,
    endpoints,
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || DEFAULTS.region,
    credentials:
      emulated && !hasCredentials && !env.AWS_PROFILE
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

/**
 * `env` pointed at one endpoint for every service: AWS_ENDPOINT_URL set, the per-service
 * variables removed (they would override it).
 */
export function withOneEndpoint(env: NodeJS.ProcessEnv, endpoint: string): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, AWS_ENDPOINT_URL: endpoint };
  for (const name of Object.values(SERVICE_ENDPOINT_VARS)) delete out[name];
  return out;
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
  for (const [service, endpoint] of Object.entries(config.endpoints) as [ServiceName, string][]) env[SERVICE_ENDPOINT_VARS[service]] = endpoint;
  if (config.credentials) {
    env.AWS_ACCESS_KEY_ID = config.credentials.accessKeyId;
    env.AWS_SECRET_ACCESS_KEY = config.credentials.secretAccessKey;
  }
  return env;
}
