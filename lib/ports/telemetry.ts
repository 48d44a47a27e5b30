/**
 * Telemetry ports: structured log lines and metrics. Both planes write through these; the
 * Powertools implementations (JSON logs, CloudWatch EMF) live at the edges (lib/observability,
 * wired in functions/ and lib/local), so the core runs and is tested without them.
 *
 * Log attributes name what a line is about, with these keys wherever they apply:
 *   jobId, unitId, attempt, invocation (the attempt's hand-over generation, 0 first),
 *   checkpointId, subtask, regionId.
 */

export type LogAttributes = Readonly<Record<string, unknown>>;

export interface Logger {
  debug(message: string, attributes?: LogAttributes): void;
  info(message: string, attributes?: LogAttributes): void;
  warn(message: string, attributes?: LogAttributes): void;
  error(message: string, attributes?: LogAttributes): void;
  /** A logger that adds these attributes to every line it writes. */
  child(attributes: LogAttributes): Logger;
}

/** Writes nothing (the default where no logger is given). */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * A logger writing one plain line per call, `LEVEL message key=value ...` (the line's own
 * attributes; the child's are left out unless `withContext`): for tests and terminal output.
 */
export function textLogger(write: (line: string, level: LogLevel) => void, options: { withContext?: boolean } = {}, context: LogAttributes = {}): Logger {
  const line = (level: LogLevel) => (message: string, attributes?: LogAttributes) => {
    const shown = { ...(options.withContext ? context : {}), ...attributes };
    const extra = Object.entries(shown)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : v instanceof Error ? v.message : JSON.stringify(v)}`);
    write([message, ...extra].join(' '), level);
  };
  return {
    debug: line('debug'),
    info: line('info'),
    warn: line('warn'),
    error: line('error'),
    child: (attributes) => textLogger(write, options, { ...context, ...attributes }),
  };
}

/** A metric as the metric table (lib/observability/metric-names.ts) defines it. */
export interface MetricDef {
  readonly name: string;
  readonly unit: string;
  readonly dimensions: readonly string[];
}

export interface MetricsSink {
  /**
   * Adds one value of a metric under these dimensions; their keys must be exactly the metric's
   * dimensions. Values wait for `flush`.
   */
  add(metric: MetricDef, value: number, dimensions: Readonly<Record<string, string>>): void;
  /** Publishes what was added since the last flush. */
  flush(): void;
}

/** Publishes nothing (the default where no metrics sink is given). */
export const noMetrics: MetricsSink = {
  add: () => undefined,
  flush: () => undefined,
};

/** Every line to each of these loggers. */
export function teeLogger(...loggers: Logger[]): Logger {
  if (loggers.length === 1) return loggers[0]!;
  return {
    debug: (m, a) => loggers.forEach((l) => l.debug(m, a)),
    info: (m, a) => loggers.forEach((l) => l.info(m, a)),
    warn: (m, a) => loggers.forEach((l) => l.warn(m, a)),
    error: (m, a) => loggers.forEach((l) => l.error(m, a)),
    child: (attributes) => teeLogger(...loggers.map((l) => l.child(attributes))),
  };
}
