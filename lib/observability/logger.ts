/**
 * The Logger port over Powertools for AWS Lambda's Logger: one JSON object per line (timestamp,
 * level, message, service, the persistent keys — jobId, unitId, attempt, invocation, ... — and in
 * Lambda the invocation context and X-Ray trace id).
 *
 * By default lines go to stdout: in Lambda that is CloudWatch Logs, and a local task unit's
 * stdout is its log file (lib/local/process-launcher.ts). `write` sends them elsewhere (the local
 * control plane's file), formatted by Powertools all the same.
 */
import { Logger as PowertoolsLogger, type LogItem } from '@aws-lambda-powertools/logger';
import type { ConstructorOptions } from '@aws-lambda-powertools/logger/types';
import type { LogAttributes, Logger } from '../ports/telemetry';

export const SERVICE_NAME = 'sluice';

type Write = (line: string) => void;

/** Powertools' Logger with its output sent to a function (children inherit it). */
class WriterLogger extends PowertoolsLogger {
  constructor(
    private readonly write: Write,
    options: ConstructorOptions,
  ) {
    super(options);
  }

  protected override printLog(_level: number, log: LogItem): void {
    log.prepareForPrint();
    const line = JSON.stringify(log.getAttributes(), this.getJsonReplacer());
    // Lines Powertools prints from inside its own constructor come before `write` is set.
    if (this.write) this.write(line);
    else process.stdout.write(`${line}\n`);
  }

  protected override createLogger(options?: ConstructorOptions): PowertoolsLogger {
    return new WriterLogger(this.write, options ?? {});
  }
}

/** A Logger over a Powertools logger; `powertools` is there for its middy middleware. */
export class PowertoolsLoggerAdapter implements Logger {
  constructor(readonly powertools: PowertoolsLogger) {}

  debug(message: string, attributes?: LogAttributes): void {
    if (attributes) this.powertools.debug(message, { ...attributes });
    else this.powertools.debug(message);
  }

  info(message: string, attributes?: LogAttributes): void {
    if (attributes) this.powertools.info(message, { ...attributes });
    else this.powertools.info(message);
  }

  warn(message: string, attributes?: LogAttributes): void {
    if (attributes) this.powertools.warn(message, { ...attributes });
    else this.powertools.warn(message);
  }

  error(message: string, attributes?: LogAttributes): void {
    if (attributes) this.powertools.error(message, { ...attributes });
    else this.powertools.error(message);
  }

  child(attributes: LogAttributes): PowertoolsLoggerAdapter {
    return new PowertoolsLoggerAdapter(this.powertools.createChild({ persistentKeys: { ...attributes } }));
  }
}

export interface CreateLoggerOptions {
  /** Persistent keys of every line. */
  attributes?: LogAttributes;
  /** Where lines go (default: stdout, as Powertools writes them). */
  write?: Write;
  /** Default: POWERTOOLS_LOG_LEVEL, else INFO (Lambda's log-level setting wins in Lambda). */
  logLevel?: ConstructorOptions['logLevel'];
}

export function createLogger(options: CreateLoggerOptions = {}): PowertoolsLoggerAdapter {
  const config: ConstructorOptions = {
    serviceName: SERVICE_NAME,
    ...(options.logLevel ? { logLevel: options.logLevel } : {}),
    ...(options.attributes ? { persistentKeys: { ...options.attributes } } : {}),
  };
  return new PowertoolsLoggerAdapter(options.write ? new WriterLogger(options.write, config) : new PowertoolsLogger(config));
}
