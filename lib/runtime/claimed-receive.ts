/**
 * A receive that may wait asks SQS for a short claim and extends what it got at once.
 *
 * Why: a long poll whose caller went away (a unit stopped by a failover aborts it; a killed unit's
 * process is gone) runs on at SQS until its wait ends, and a message that arrives meanwhile is
 * received by it and hidden for the visibility the request asked for; in a FIFO queue every later
 * message of its group waits behind it. After a failover that restarts producers and consumers
 * together, the new producer attempt's first message went to the old consumer's abandoned poll and
 * its whole channel stalled for the 15 s lease (chaos seed 23462: a region restarted after end of
 * input waited 15 s per restart for a checkpoint, then for its final commit). Claimed for a few
 * seconds, such a message comes back after the claim instead.
 */
import type { ChannelTransport, InboundMessage, ReceiveOptions } from '../ports/channels';

/** Visibility a waiting receive asks for, until it extends what it got. */
export const CLAIM_SECONDS = 4;

/**
 * `transport.receive` with `options.visibilityTimeoutSeconds` held from the answer on. A receive
 * that may wait (`mayWait`: the reader's last receive left the queue drained, so this one may sit
 * at SQS for its wait) claims CLAIM_SECONDS, then extends the received messages to the timeout
 * asked for: one more request per such receive. A reader behind a backlog (its last receive came
 * back full) asks for the lease at once: its receives return without waiting, and the extra
 * request on every one of them loaded the emulator enough to slow restarts (bench:demo-recovery).
 * An extension that fails or comes too late leaves those messages to come again, as any expired
 * lease does; they are returned all the same (dropped, a FIFO group's earlier message would arrive
 * after its later ones).
 */
export async function receiveClaimed(transport: ChannelTransport, queue: string, options: ReceiveOptions, mayWait: boolean): Promise<InboundMessage[]> {
  const lease = options.visibilityTimeoutSeconds;
  if (!mayWait || options.waitSeconds <= 0 || lease === undefined || lease <= CLAIM_SECONDS) return transport.receive(queue, options);
  const messages = await transport.receive(queue, { ...options, visibilityTimeoutSeconds: CLAIM_SECONDS });
  if (messages.length > 0) {
    await transport.changeVisibility(
      queue,
      messages.map((m) => m.receipt),
      lease,
    ).catch(() => undefined);
  }
  return messages;
}
