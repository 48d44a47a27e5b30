/** bench:scale's channel transports: sends counted, and calls routed to client pools by kind. */
import type { ChannelTransport, OutboundMessage } from '../../lib/ports/channels';

/** Counts the entries and payload of every send (data and control messages) into `sent`. */
export function countingChannels(inner: ChannelTransport, sent: { messages: number; bytes: number }): ChannelTransport {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== 'send' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
      return async (queue: string, messages: readonly OutboundMessage[]) => {
        await value.call(target, queue, messages);
        sent.messages += messages.length;
        for (const m of messages) sent.bytes += Buffer.byteLength(m.body);
      };
    },
  });
}

/** One channel transport whose receives (long polls) go through `polls`, deletes and visibility changes through `settles`, the rest through `rest`. */
export function receivesFrom(polls: ChannelTransport, settles: ChannelTransport, rest: ChannelTransport): ChannelTransport {
  const sourceOf = (prop: string | symbol) => (prop === 'receive' ? polls : prop === 'delete' || prop === 'changeVisibility' ? settles : rest);
  return new Proxy(rest, {
    get(target, prop, receiver) {
      const source = sourceOf(prop);
      const value = Reflect.get(source, prop, source === target ? receiver : source);
      return typeof value === 'function' ? value.bind(source) : value;
    },
  });
}
