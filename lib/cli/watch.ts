/**
 * `sluice status --watch`: the status table again every interval, in place on a terminal (cursor
 * home, clear, redraw, as `watch` does; elsewhere each refresh is appended), until the job is no
 * longer running. Ctrl-C stops watching (the job goes on) and leaves the last table on screen.
 */
import type { ApiRequest } from './parse';
import { renderApiError, renderStatus } from './render';

export type ApiCall = (api: string, request: ApiRequest, sigv4: boolean) => Promise<{ status: number; body: unknown }>;

export interface WatchIo {
  write(text: string): void;
  /** A terminal: redraw in place. */
  isTTY: boolean;
  /** Resolves after `ms`, or early when the signal aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  /** Aborted by Ctrl-C. */
  signal: AbortSignal;
  now?: () => number;
}

/** Cursor to the top left, clear the screen below it. */
export const REDRAW = '\x1b[H\x1b[J';

/**
 * Watches one job. Exit code: 0 when it ended FINISHED or CANCELLED, 1 when it FAILED or the API
 * answered an error, 130 when interrupted.
 */
export async function watchStatus(api: string, request: ApiRequest, sigv4: boolean, intervalMs: number, call: ApiCall, io: WatchIo): Promise<number> {
  const now = io.now ?? Date.now;
  const stopped = aborted(io.signal);
  for (;;) {
    if (io.signal.aborted) return interrupted(io);
    // A request in flight does not hold Ctrl-C up (an unreachable API may take its time to fail).
    const response = await Promise.race([call(api, request, sigv4), stopped]).catch((err: unknown) => {
      if (io.signal.aborted) return undefined;
      throw err;
    });
    if (response === undefined || io.signal.aborted) return interrupted(io);
    if (response.status >= 400) {
      io.write(`${renderApiError(response.status, response.body)}\n`);
      return 1;
    }
    const body = response.body as { job?: { status?: string } };
    const status = body.job?.status;
    const running = status === 'RUNNING';
    const footer = running ? `\n\nrefreshing every ${formatSeconds(intervalMs)} (${new Date(now()).toISOString().slice(11, 19)}Z); Ctrl-C stops watching, not the job` : '';
    io.write(`${io.isTTY ? REDRAW : ''}${renderStatus(body, now())}${footer}\n${io.isTTY ? '' : '\n'}`);
    if (!running) return status === 'FAILED' ? 1 : 0;
    await io.sleep(intervalMs, io.signal);
  }
}

/** Resolves (with undefined) when the signal aborts. */
function aborted(signal: AbortSignal): Promise<undefined> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(undefined);
    signal.addEventListener('abort', () => resolve(undefined), { once: true });
  });
}

function interrupted(io: WatchIo): number {
  io.write('\n');
  return 130;
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** A sleep that ends early when the signal aborts (no timer left behind). */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
