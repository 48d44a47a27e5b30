/**
 * Consecutive runs of `items` within a size and a count: SQS batches, control messages of replay
 * requests. An item larger than `maxSize` goes alone (a caller that must refuse it checks first).
 */
export function chunkBySize<T>(items: readonly T[], sizeOf: (item: T) => number, maxSize: number, maxCount = Infinity): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const item of items) {
    const n = sizeOf(item);
    if (current.length === maxCount || (current.length > 0 && size + n > maxSize)) {
      chunks.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += n;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
