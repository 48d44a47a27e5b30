/** Unique resource names, so test files (and tests) can share one emulator in parallel. */
let counter = 0;
const run = `${process.pid.toString(36)}${Date.now().toString(36).slice(-5)}`;

/** Lowercase letters, digits and hyphens: valid for buckets, tables and queues alike. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${run}-${(counter++).toString(36)}`;
}
