/** Errors a user sees when the endpoint, the bucket, the table or a queue is not there. */
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, serviceEndpoint, withOneEndpoint } from '../../lib/config';
import { SluiceAwsError, checkEndpoint, createAwsPorts, ensureInfrastructure, requestCounts, type AwsClients } from '../../lib/aws';
import { freePort } from '../../lib/local/emulator';
import { uniqueName } from '../contracts/names';

const opened: AwsClients[] = [];
afterAll(() => opened.forEach((c) => c.destroy()));

function portsFor(env: { AWS_ENDPOINT_URL?: string }) {
  const base = { ...process.env, SLUICE_TABLE: uniqueName('tbl'), SLUICE_BUCKET: uniqueName('bkt') };
  const config = loadConfig(env.AWS_ENDPOINT_URL ? withOneEndpoint(base, env.AWS_ENDPOINT_URL) : base);
  const ports = createAwsPorts(config);
  opened.push(ports.clients);
  return { config, ...ports };
}

describe('AWS errors', () => {
  it('says which endpoint cannot be reached, within a few seconds, counting every attempt', async () => {
    const port = await freePort(); // nothing listens there any more
    const endpoint = `http://127.0.0.1:${port}`;
    const { config, channels, metadata, blobs } = portsFor({ AWS_ENDPOINT_URL: endpoint });
    const before = requestCounts().sqs;
    const started = Date.now();
    const err = await channels.send('q', [{ groupId: '0', dedupId: 'd', body: 'x' }]).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(err).toBeInstanceOf(SluiceAwsError);
    expect(err).toMatchObject({ kind: 'unreachable', service: 'sqs' });
    expect((err as Error).message).toMatch(
      new RegExp(`^cannot reach the AWS endpoint ${endpoint} \\(sqs\\): connection refused\\. Is the emulator or LocalStack running\\? Set AWS_ENDPOINT_URL`),
    );
    // The SDK tried 3 times (maxAttempts); each attempt is a request.
    expect(requestCounts().sqs - before).toBe(3);

    await expect(metadata.get('p', 's')).rejects.toThrow(`cannot reach the AWS endpoint ${endpoint} (dynamodb): connection refused`);
    await expect(blobs.get('k')).rejects.toThrow(`cannot reach the AWS endpoint ${endpoint} (s3): connection refused`);
    const t0 = Date.now();
    await expect(checkEndpoint(config)).rejects.toMatchObject({ kind: 'unreachable' });
    expect(Date.now() - t0).toBeLessThan(3_000);
  });

  it('says when the endpoint hangs, and when it is not an AWS endpoint at all', async () => {
    // Accepts connections and never answers.
    const hung = createNetServer((socket) => socket.on('data', () => {}));
    // Answers every request with a bare 404, like a web server.
    const web = createHttpServer((_req, res) => res.writeHead(404).end());
    const endpointOf = async (server: NetServer) => {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    };
    try {
      const hungEndpoint = await endpointOf(hung);
      const config = loadConfig(withOneEndpoint(process.env, hungEndpoint));
      const ports = createAwsPorts(config, { requestTimeoutMs: 500, maxAttempts: 1 });
      opened.push(ports.clients);
      await expect(ports.metadata.get('p', 's')).rejects.toThrow(`cannot reach the AWS endpoint ${hungEndpoint} (dynamodb): timed out.`);

      const webEndpoint = await endpointOf(web);
      const { metadata } = portsFor({ AWS_ENDPOINT_URL: webEndpoint });
      await expect(metadata.get('p', 's')).rejects.toThrow(
        `${webEndpoint} answered HTTP 404 to dynamodb GetItem with no AWS error in it. Does AWS_ENDPOINT_URL point at an AWS emulator`,
      );
    } finally {
      hung.close();
      web.closeAllConnections();
      web.close();
    }
  });

  it('accepts a reachable endpoint in checkEndpoint', async () => {
    const { config } = portsFor({});
    await expect(checkEndpoint(config)).resolves.toBeUndefined();
  });

  it('names a missing bucket', async () => {
    const { config, blobs } = portsFor({});
    const expected = `S3 bucket '${config.bucket}' does not exist at ${serviceEndpoint(config, 's3')}.`;
    await expect(blobs.put('k', 'v')).rejects.toMatchObject({ kind: 'missing-bucket' });
    await expect(blobs.put('k', 'v')).rejects.toThrow(expected);
    // A read is an error too, not "no such object".
    await expect(blobs.get('k')).rejects.toThrow(expected);
    await expect(blobs.list('')).rejects.toThrow(expected);
  });

  it('names a missing table, even for a conditional write', async () => {
    const { config, metadata } = portsFor({});
    const expected = `DynamoDB table '${config.table}' does not exist at ${serviceEndpoint(config, 'dynamodb')}.`;
    await expect(metadata.get('p', 's')).rejects.toMatchObject({ kind: 'missing-table', message: expect.stringContaining(expected) });
    await expect(metadata.put('p', 's', { a: 1 }, [{ attr: 'a', op: 'notExists' }])).rejects.toThrow(expected);
    await expect(metadata.update('p', 's', { add: { n: 1 } }, [{ attr: 'n', op: '<', value: 3 }])).rejects.toThrow(expected);
  });

  it('names a queue deleted while in use', async () => {
    const { config, channels } = portsFor({});
    const q = uniqueName('vanish');
    await channels.createQueues([q]);
    await channels.send(q, [{ groupId: '0', dedupId: '1', body: 'x' }]);
    // Deleted by someone else: this transport still has the queue URL cached.
    const other = createAwsPorts(config);
    opened.push(other.clients);
    await other.channels.deleteQueues([q]);
    const expected = `queue '${q}' no longer exists (deleted while the job ran?)`;
    await expect(channels.send(q, [{ groupId: '0', dedupId: '2', body: 'y' }])).rejects.toMatchObject({ kind: 'missing-queue', message: expected });
    await expect(channels.receive(q, { max: 1, waitSeconds: 0 })).rejects.toThrow(expected);
    await expect(channels.delete(q, ['receipt'])).rejects.toThrow(expected);
  });

  it('provisions what was missing', async () => {
    const { config, clients, metadata, blobs } = portsFor({});
    await ensureInfrastructure(config, clients);
    expect(await metadata.get('p', 's')).toBeUndefined();
    expect(await blobs.get('k')).toBeUndefined();
  });
});
