/**
 * Live refresh: the page on screen polls the API (a fixed pause after each answer, so slow answers
 * never pile up) until the route changes; the top bar says when it last heard from the API.
 */
import { clock } from './format';

export const POLL_MS = 1500;

let generation = 0;

/** Ends the current page's polling; returns the new page's token. */
export function nextPage(): number {
  return ++generation;
}

export function isCurrent(token: number): boolean {
  return token === generation;
}

function setLive(text: string, ok: boolean): void {
  const el = document.getElementById('live');
  if (!el) return;
  el.textContent = text;
  el.classList.toggle('live-error', !ok);
}

/** Calls `refresh` now and every POLL_MS after it settles, while `token` is the current page. */
export function poll(token: number, refresh: () => Promise<void>): void {
  const tick = async () => {
    if (!isCurrent(token)) return;
    try {
      await refresh();
      if (isCurrent(token)) setLive(`live · updated ${clock(Date.now())}`, true);
    } catch (err) {
      if (isCurrent(token)) setLive(`API error: ${err instanceof Error ? err.message : String(err)} (retrying)`, false);
    }
    if (isCurrent(token)) setTimeout(tick, POLL_MS);
  };
  void tick();
}
