/**
 * The embedded AWS emulator: moto's server (SQS, DynamoDB, S3, Kinesis) in a project-local
 * Python virtualenv, for people without Docker/LocalStack. Used by the demo and the tests.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { SERVICE_ENDPOINT_VARS, type ServiceName } from '../config';
import { withFileLock } from '../util/file-lock';
import { FROM_SOURCE, PACKAGE_ROOT, WORK_ROOT } from '../util/package-root';

export const MOTO_VERSION = '5.2.5';
export const REPO_ROOT = PACKAGE_ROOT;

/** Where the emulator's virtualenv goes: the checkout's .venv, or .sluice/.venv in the project of an installed Sluice. */
const EMULATOR_ROOT = FROM_SOURCE ? PACKAGE_ROOT : join(WORK_ROOT, '.sluice');
/**
 * Where an emulator process's stderr goes, one file per port: request logging is off, so what is
 * there is moto's warnings and the tracebacks of requests it failed (an S3 listing answered with an
 * HTML error page failed sinks at P=2000, docs/scale.md, and left nothing to read).
 */
export const EMULATOR_LOG_DIR = join(WORK_ROOT, '.sluice', 'logs', 'emulator');

export interface EmulatorPaths {
  venv: string;
  python: string;
  /** Written after a successful install of the pinned moto; its presence is the fast path. */
  marker: string;
  lock: string;
}

export function emulatorPaths(root = EMULATOR_ROOT): EmulatorPaths {
  const venv = join(root, '.venv');
  return {
    venv,
    python: join(venv, 'bin', 'python'),
    marker: join(venv, `.sluice-moto-${MOTO_VERSION}`),
    lock: join(root, '.sluice', 'moto-install.lock'),
  };
}

function run(cmd: string, args: string[], what: string): string {
  const res = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (res.error || res.status !== 0) {
    const detail = (res.error?.message ?? res.stderr ?? '').trim().split('\n').slice(-5).join('\n');
    throw new Error(`${what} failed (${cmd} ${args.join(' ')}):\n${detail}`);
  }
  return res.stdout;
}

/**
 * Creates `<repo>/.venv` and installs the pinned `moto[server]` into it, once. Safe when several
 * processes call it at once (a lock file); fast (one stat) when it is already done.
 */
export async function ensureMotoInstalled(options: { root?: string; log?: (line: string) => void } = {}): Promise<EmulatorPaths> {
  const paths = emulatorPaths(options.root);
  if (existsSync(paths.marker) && existsSync(paths.python)) return paths;
  const log = options.log ?? ((line: string) => console.error(line));
  return withFileLock(paths.lock, () => {
    if (existsSync(paths.marker) && existsSync(paths.python)) return paths;
    // An existing venv may already hold the right moto (and the server extras): then no install.
    const hasVenv = existsSync(paths.python);
    const probe = hasVenv
      ? spawnSync(paths.python, ['-c', "import importlib.metadata as m, flask, flask_cors; print(m.version('moto'))"], { encoding: 'utf8' })
      : undefined;
    if (probe?.status !== 0 || probe.stdout.trim() !== MOTO_VERSION) {
      log(`sluice: installing moto[server]==${MOTO_VERSION} into ${paths.venv} for the embedded AWS emulator (one time; takes a minute or two)`);
      if (!hasVenv) {
        const python = process.env.SLUICE_PYTHON || 'python3';
        run(python, ['-m', 'venv', paths.venv], `creating the virtualenv (needs Python 3.9+ as '${python}'; set SLUICE_PYTHON to another interpreter)`);
      }
      run(paths.python, ['-m', 'pip', 'install', '--disable-pip-version-check', '--quiet', `moto[server]==${MOTO_VERSION}`], 'installing moto');
    }
    writeFileSync(paths.marker, `moto[server]==${MOTO_VERSION}\n`);
    return paths;
  });
}

/**
 * Runs moto's server (moto.server.main, what `moto_server` runs: werkzeug with threaded=True, one
 * thread per request, so concurrent long polls do not block each other). Additions:
 * - request logging is off (one stderr line per request otherwise);
 * - the server exits when its stdin closes, i.e. when the parent process is gone however it died;
 * - five fixes to moto's SQS on FIFO queues (moto 5.2.5, checked against its source):
 *   1. it waits "until some message is visible", which returns at once when the only visible
 *      messages belong to a group blocked by an in-flight message: the poll spins a core (and the
 *      GIL) for its whole wait. We wait for a new message or 100 ms instead.
 *   2. it takes the set of blocked groups once per call and keeps it while the call waits, so a
 *      group unblocked by a delete during the poll stays blocked until the poll ends (up to 20 s
 *      of stall), and a group blocked by another receive meanwhile is served to this one too: two
 *      polls take consecutive messages of one group, out of order (the first to a consumer that
 *      died with its poll pending: its records were lost to a region restart). Each scan takes a
 *      fresh set, one scan at a time per queue, and the waits between scans run unlocked.
 *   3. it deduplicates only against messages still in the queue; SQS remembers a deduplication id
 *      for 5 minutes even after the message was deleted. We keep that 5-minute memory.
 *   4. (release_expired) a message whose visibility timeout passed still blocks its group.
 *   5. it accepts any receipt handle a message ever had, for delete and visibility changes, also
 *      after the visibility timeout passed. On SQS FIFO such a receipt has expired: the entry fails
 *      (sender fault, "The receipt handle has expired"). We refuse it the same way.
 * - two fixes to moto's SQS cost (profiled with py-spy under the demo: a third of the emulator's
 *   time): every send and receive reads the queue's attributes several times, and each read counts
 *   every message of the queue three times (the ApproximateNumberOf… attributes); we count them only
 *   for a GetQueueAttributes call. Its clock (unix_time) builds two datetimes per call, once per
 *   message per scan; we read time.time().
 * - three more cost fixes, profiled with py-spy under the demo (per-service processes, moto 5.2.5):
 *   moto's JSON serializer walks every DynamoDB AttributeValue member by member through its
 *   attribute picker (half of the DynamoDB process's time): an AttributeValue already in wire form
 *   (no binary) is copied as is. Every response's body is scanned by a regular expression for an
 *   XML <RequestId> (megabytes per SQS receive of large messages): skipped when the body has none.
 *   Every message received checked its retention through get_queue_attributes (all attributes,
 *   twice): the queue's retention period is read directly. Attribute name conversions are cached.
 *   test/integration/emulator-cost-patches.test.ts checks the answers against moto as released.
 * - Kinesis as AWS documents it (moto 5.2.5 differs): a split or merge leaves the parents' records in
 *   the parents and starts the children empty (moto moves or copies them), only open shards take
 *   new records, a hash key range includes its ending key, a closed shard read to its end gives no
 *   next iterator, an iterator expires after 5 minutes, GetRecords is refused past 5 calls a second
 *   per shard and past a Limit of 10,000; and a read starts at the iterator's position instead of
 *   scanning the shard from its start (O(shard) per call), as does finding its last sequence number.
 * - S3 listings while keys are deleted (S3_LIST_PATCH): moto lists from a copy of the key names and
 *   reads each key from the live store, so a concurrent delete failed the listing.
 * - moto's memory (MODEL_TRACKING_PATCH): it kept every model object it ever made (each Query's
 *   copies of the items it answered with, each message, each object version) for its dashboard.
 * - two fixes to moto's DynamoDB: a Query sorts every item of the table to find one partition's
 *   (O(table) per call; a table that gathers checkpoint history made every query of a long job
 *   slower, and the whole emulator with it). We hand it the queried partition only, which is what
 *   a Query reads on DynamoDB; queries of an index are left as they are. And its requests run one
 *   at a time, the answer included: on the threaded server a conditional write's check and write
 *   were not atomic, and two concurrent writers of one item both won; later, two atomic adds both
 *   answered the later count, the stored item having changed between the write and its answer
 *   (the MetadataStore contract test caught each once under load); on DynamoDB neither happens.
 */
/**
 * moto's S3 key store lists from a copy of its key names and then reads each key from the live
 * store: a key deleted meanwhile (a sink replacing its progress key while another lists them all)
 * raises KeyError, and the listing is answered with an HTML error page (bench:scale at P=2000:
 * sinks of two units failed on "XML parse error: mismatched tags <html> and </title>"). S3 lists
 * whatever it lists; here the listing takes the copy's own versions.
 */
export const S3_LIST_PATCH = `
from moto.s3 import utils as s3_utils
def s3_store_items(self):
    for key, versions in self._self_iterable().items():
        if versions:
            yield key, versions[-1]
def s3_store_values(self):
    for _, value in s3_store_items(self):
        yield value
def s3_store_lists(self):
    for key, versions in self._self_iterable().items():
        yield key, versions
S = s3_utils._VersionedKeyStore
S.items = S.iteritems = S._iteritems = s3_store_items
S.values = S.itervalues = S._itervalues = s3_store_values
S.lists = S.iterlists = S._iterlists = s3_store_lists
`;

/**
 * moto keeps every model object it ever creates in a class-level list (\`BaseModel.__new__\`
 * appends to \`instances_tracked\`, for its dashboard and reset): each DynamoDB query's deep copy
 * of the items it returns, each S3 object version, each SQS message, for the life of the process.
 * At P=5000 the DynamoDB emulator grew by ~7 MB/s (the supervisor's queries of 100 unit records
 * of ~27 KB twice a second) to 12 GB within half an hour. DynamoDB, S3 and SQS keep nothing
 * of an answer once it is given; here nothing is tracked (this project uses neither the dashboard
 * nor moto's reset).
 */
export const MODEL_TRACKING_PATCH = `
from moto.core import common_models as moto_common_models
def untracked_model(cls, *args, **kwargs):
    return object.__new__(cls)
moto_common_models.BaseModel.__new__ = staticmethod(untracked_model)
`;

const SERVER_SCRIPT = `
import json, logging, os, sys, threading, time
logging.getLogger('werkzeug').setLevel(logging.WARNING)
${MODEL_TRACKING_PATCH}
from moto.sqs import models as sqs_models
def wait_for_messages(self, timeout):
    with self._messages_lock:
        self._messages_lock.wait(timeout=min(timeout, 0.1))
sqs_models.Queue.wait_for_messages = wait_for_messages
original_receive = sqs_models.SQSBackend.receive_message
def release_expired(backend, queue_name):
    # Messages whose visibility timeout passed are no longer in flight: unblock their FIFO group
    # before the scan, or moto skips the group's oldest messages and delivers out of order.
    queue = backend.get_queue(queue_name)
    for message in [m for m in queue.pending_messages if m.visible]:
        queue.pending_messages.discard(message)
scan_locks_guard = threading.Lock()
def scan_lock(queue):
    lock = queue.__dict__.get('_sluice_scan_lock')
    if lock is None:
        with scan_locks_guard:
            lock = queue.__dict__.setdefault('_sluice_scan_lock', threading.Lock())
    return lock
def receive_message(self, queue_name, count, wait_seconds_timeout, *args, **kwargs):
    # One scan at a time per queue, each with a fresh set of blocked groups and no wait inside;
    # the waits between scans run unlocked, so concurrent long polls still wait side by side.
    deadline = time.time() + wait_seconds_timeout
    queue = self.get_queue(queue_name)
    lock = scan_lock(queue)
    while True:
        with lock:
            release_expired(self, queue_name)
            result = original_receive(self, queue_name, count, 0, *args, **kwargs)
        remaining = deadline - time.time()
        if result or remaining <= 0:
            return result
        queue.wait_for_messages(remaining)
sqs_models.SQSBackend.receive_message = receive_message
original_add = sqs_models.Queue.add_message
def add_message(self, message):
    if self.fifo_queue and message.deduplication_id:
        seen = self.__dict__.setdefault('_sluice_dedup', {})
        now = time.time()
        while seen:
            oldest = next(iter(seen))
            if now - seen[oldest] < 300:
                break
            del seen[oldest]
        if message.deduplication_id in seen:
            return
        seen[message.deduplication_id] = now
    original_add(self, message)
sqs_models.Queue.add_message = add_message
from moto.sqs.exceptions import InvalidParameterValue
def receipt_expired(queue, handle):
    # A receipt works only while its message is in flight under it (not superseded, not visible).
    if not queue.fifo_queue or handle in queue.deleted_messages:
        return False
    for message in queue._messages:
        if message.receipt_handle == handle:
            return message.visible
    return any(handle in message._old_receipt_handles for message in queue._messages)
def expired_message(handle):
    return f'Value {handle} for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired.'
def expired_entry(entry):
    return {'Id': entry['Id'], 'SenderFault': True, 'Code': 'InvalidParameterValue', 'Message': expired_message(entry['ReceiptHandle'])}
def strict_batch(original):
    # Entry by entry, so an expiry (also one that happens during the call) fails only its entry.
    def batch(self, queue_name, entries):
        queue = self.get_queue(queue_name)
        success, failed = [], []
        for entry in entries:
            try:
                if receipt_expired(queue, entry['ReceiptHandle']):
                    raise InvalidParameterValue(expired_message(entry['ReceiptHandle']))
                ok, bad = original(self, queue_name, [entry])
            except InvalidParameterValue as err:
                message = str(getattr(err, 'message', err))
                ok, bad = [], [expired_entry(entry) if 'expired' in message else {'Id': entry['Id'], 'SenderFault': True, 'Code': 'InvalidParameterValue', 'Message': message}]
            success += ok
            failed += bad
        return success, failed
    return batch
def strict_single(original):
    def single(self, queue_name, receipt_handle, *args, **kwargs):
        if receipt_expired(self.get_queue(queue_name), receipt_handle):
            raise InvalidParameterValue(expired_message(receipt_handle))
        return original(self, queue_name, receipt_handle, *args, **kwargs)
    return single
sqs_models.SQSBackend.delete_message_batch = strict_batch(sqs_models.SQSBackend.delete_message_batch)
sqs_models.SQSBackend.change_message_visibility_batch = strict_batch(sqs_models.SQSBackend.change_message_visibility_batch)
sqs_models.SQSBackend.delete_message = strict_single(sqs_models.SQSBackend.delete_message)
sqs_models.SQSBackend.change_message_visibility = strict_single(sqs_models.SQSBackend.change_message_visibility)
original_unix_time = sqs_models.unix_time
sqs_models.unix_time = lambda dt=None: time.time() if dt is None else original_unix_time(dt)
sqs_models.unix_time_millis = lambda dt=None: time.time() * 1000.0 if dt is None else original_unix_time(dt) * 1000.0
from moto.sqs import responses as sqs_responses
wants_counts = threading.local()
MESSAGE_COUNTS = ('ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesDelayed', 'ApproximateNumberOfMessagesNotVisible')
original_attributes = sqs_models.Queue.attributes.fget
def queue_attributes(self):
    if getattr(wants_counts, 'on', False):
        return original_attributes(self)
    # moto's attributes, less the three message counts (each a pass over every message of the queue).
    names = [a for a in self.BASE_ATTRIBUTES if a not in MESSAGE_COUNTS]
    if self.fifo_queue:
        names += self.FIFO_ATTRIBUTES
    if self.kms_master_key_id:
        names += self.KMS_ATTRIBUTES
    result = {a: getattr(self, cached_underscores(a)) for a in names}
    if self.policy:
        result['Policy'] = self.policy
    if self.redrive_policy:
        result['RedrivePolicy'] = json.dumps(self.redrive_policy)
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in result.items()}
sqs_models.Queue.attributes = property(queue_attributes)
original_get_queue_attributes = sqs_responses.SQSResponse.get_queue_attributes
def get_queue_attributes_response(self, *args, **kwargs):
    wants_counts.on = True
    try:
        return original_get_queue_attributes(self, *args, **kwargs)
    finally:
        wants_counts.on = False
sqs_responses.SQSResponse.get_queue_attributes = get_queue_attributes_response
import functools
from moto.core import utils as core_utils, responses as core_responses
cached_underscores = functools.lru_cache(maxsize=4096)(core_utils.camelcase_to_underscores)
core_responses.camelcase_to_underscores = cached_underscores
sqs_models.camelcase_to_underscores = cached_underscores
camelcase_to_underscores = cached_underscores
def is_message_valid_based_on_retention_period(self, queue_name, message):
    # The queue's retention period read directly, not through get_queue_attributes (which builds
    # every attribute of the queue twice, once per message received).
    queue = self.get_queue(queue_name)
    return int(queue.message_retention_period) + message.sent_timestamp / 1000 > time.time()
sqs_models.SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
original_enrich = core_responses.BaseResponse._enrich_response
def enrich_response(headers, body):
    # moto puts the request id into an XML body with a regular expression run over the whole body
    # (a receive of ten 240 KiB messages: megabytes scanned). Without '<RequestId>' in the body
    # (every JSON response) it cannot match: only the headers are set.
    if not isinstance(body, str) or '<RequestId>' not in body:
        headers, _ = original_enrich(headers, '')
        return headers, body
    return original_enrich(headers, body)
core_responses.BaseResponse._enrich_response = staticmethod(enrich_response)
from moto.core import serialize as moto_serialize
PLAIN_TYPES = {'S': str, 'N': str, 'BOOL': bool, 'NULL': bool}
def plain_attribute(value):
    # A DynamoDB AttributeValue already in its wire form: one type key, JSON values, no binary.
    if type(value) is not dict or len(value) != 1:
        return False
    (kind, inner), = value.items()
    if kind in PLAIN_TYPES:
        return type(inner) is PLAIN_TYPES[kind]
    if kind in ('SS', 'NS'):
        return type(inner) is list and all(type(x) is str for x in inner)
    if kind == 'M':
        return type(inner) is dict and all(type(k) is str and plain_attribute(v) for k, v in inner.items())
    if kind == 'L':
        return type(inner) is list and all(plain_attribute(v) for v in inner)
    return False
original_json_structure = moto_serialize.BaseJSONSerializer._serialize_type_structure
def json_structure(self, serialized, value, shape, key):
    # moto's serializer walks each AttributeValue member by member through its attribute picker
    # (half of the DynamoDB emulator's time under a job). One already in wire form is copied as
    # is: the same JSON the walk would produce.
    if key and shape.name == 'AttributeValue' and not self._value_picker.response_transformers and plain_attribute(value):
        self._default_serialize(serialized, value, shape, key)
        return
    original_json_structure(self, serialized, value, shape, key)
moto_serialize.BaseJSONSerializer._serialize_type_structure = json_structure
from moto.dynamodb.models import table as ddb_table
query_partition = threading.local()
original_all_items = ddb_table.Table.all_items
def all_items(self):
    key = getattr(query_partition, 'key', None)
    if key is None or not self.range_key_attr:
        return original_all_items(self)
    items = self.items[key] if key in self.items else {}
    return sorted(items.values(), key=lambda item: item.range_key)
ddb_table.Table.all_items = all_items
original_query = ddb_table.Table.query
def query(self, hash_key, *args, **kwargs):
    index_name = args[6] if len(args) > 6 else kwargs.get('index_name')
    if index_name or hash_key is None:
        return original_query(self, hash_key, *args, **kwargs)
    query_partition.key = hash_key
    try:
        return original_query(self, hash_key, *args, **kwargs)
    finally:
        query_partition.key = None
ddb_table.Table.query = query
${S3_LIST_PATCH}
from moto.dynamodb import models as ddb_models
# DynamoDB checks a write's condition and applies it atomically, and a read never sees half of an
# update. moto's threaded server does neither: two concurrent conditional writers of one item
# could both win. Its operations take turns here (the interpreter lock serializes them anyway).
ddb_lock = threading.RLock()
def ddb_serialized(method):
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with ddb_lock:
            return method(self, *args, **kwargs)
    return run
for name in ('put_item', 'update_item', 'delete_item', 'transact_write_items', 'batch_write_item', 'get_item', 'query', 'scan', 'batch_get_item'):
    setattr(ddb_models.DynamoDBBackend, name, ddb_serialized(getattr(ddb_models.DynamoDBBackend, name)))
# The answer too: the handler turns the item it got back into JSON after the backend call, and that
# item is the stored one, which the next writer may change meanwhile (two concurrent atomic adds
# both answered 43, none 42: a clean-clone npm test under load). A request runs whole, in turn.
from moto.dynamodb import responses as ddb_responses
for name in ('put_item', 'update_item', 'delete_item', 'transact_write_items', 'transact_get_items', 'batch_write_item', 'get_item', 'query', 'scan', 'batch_get_item'):
    if hasattr(ddb_responses.DynamoHandler, name):
        setattr(ddb_responses.DynamoHandler, name, ddb_serialized(getattr(ddb_responses.DynamoHandler, name)))
from collections import OrderedDict
from moto.core.exceptions import JsonRESTError
from moto.kinesis import models as kinesis_models
from moto.kinesis import utils as kinesis_utils
from moto.utilities.utils import md5_hash
K = kinesis_models
K.Shard.get_max_sequence_number = lambda self: next(reversed(self.records)) if self.records else 0
K.Shard.get_min_sequence_number = lambda self: next(iter(self.records)) if self.records else 0
def shard_get_records(self, last_sequence_id, limit):
    # Sequence numbers in a shard are consecutive here: read from the iterator's on, not from the start.
    last = int(last_sequence_id)
    top = self.get_max_sequence_number()
    limit = int(limit or 10000)
    results = []
    seq = last + 1
    while seq <= top and len(results) < limit:
        record = self.records.get(seq)
        if record is not None:
            results.append(record)
            last = seq
        seq += 1
    behind = int((self.records[top].created_at - results[-1].created_at) * 1000) if results else 0
    return results, last, behind
K.Shard.get_records = shard_get_records
def keeping_records(original, names):
    # AWS leaves a parent's records in the parent (readable until retention ends); the children start empty.
    def reshard(self, *args):
        shards = [self.shards[shard_id] for shard_id in names(args) if shard_id in self.shards]
        kept = [(shard, shard.records) for shard in shards]
        for shard, _ in kept:
            shard.records = OrderedDict()
        try:
            return original(self, *args)
        finally:
            for shard, records in kept:
                shard.records = records
    return reshard
K.Stream.split_shard = keeping_records(K.Stream.split_shard, lambda args: [args[0]])
K.Stream.merge_shards = keeping_records(K.Stream.merge_shards, lambda args: [args[0], args[1]])
def get_shard_for_key(self, partition_key, explicit_hash_key):
    # Only open shards take records, and a shard's range includes its ending hash key.
    if not isinstance(partition_key, str) or len(partition_key) > 256:
        raise K.InvalidArgumentError('partition_key')
    if explicit_hash_key:
        key = int(explicit_hash_key)
        if key >= 2**128:
            raise K.InvalidArgumentError('explicit_hash_key')
    else:
        key = int(md5_hash(partition_key.encode('utf-8')).hexdigest(), 16)
    for shard in self.shards.values():
        if shard.is_open and shard.starting_hash <= key <= shard.ending_hash:
            return shard
    return None
K.Stream.get_shard_for_key = get_shard_for_key
ITERATOR_LIFETIME = 300
def compose_shard_iterator(stream_name, shard, last_sequence_id):
    # The time it was handed out goes in the iterator: AWS refuses an iterator older than 5 minutes.
    return kinesis_utils.encode_method(f"{stream_name}:{shard.shard_id}:{last_sequence_id}:{time.time()}".encode()).decode('utf-8')
K.compose_shard_iterator = compose_shard_iterator
kinesis_utils.compose_shard_iterator = compose_shard_iterator
def decompose_shard_iterator(shard_iterator):
    parts = kinesis_utils.decode_method(shard_iterator.encode('utf-8')).decode('utf-8').split(':')
    if len(parts) == 4:
        if time.time() - float(parts[3]) > ITERATOR_LIFETIME:
            raise JsonRESTError('ExpiredIteratorException', f'Iterator expired. The iterator was created more than {ITERATOR_LIFETIME} seconds ago.')
        parts = parts[:3]
    return parts
K.decompose_shard_iterator = decompose_shard_iterator
reads = {}
reads_lock = threading.Lock()
original_backend_get_records = K.KinesisBackend.get_records
def backend_get_records(self, stream_arn, shard_iterator, limit):
    if limit is not None and not 1 <= int(limit) <= 10000:
        raise K.InvalidArgumentError(f'Limit must be from 1 to 10000, got {limit}')
    stream_name, shard_id, _ = decompose_shard_iterator(shard_iterator)
    # AWS serves 5 GetRecords a second per shard; more is refused.
    now = time.time()
    with reads_lock:
        recent = [t for t in reads.get((stream_name, shard_id), []) if now - t < 1.0]
        if len(recent) >= 5:
            reads[(stream_name, shard_id)] = recent
            raise JsonRESTError('ProvisionedThroughputExceededException', f'Rate exceeded for shard {shard_id} in stream {stream_name}.')
        reads[(stream_name, shard_id)] = recent + [now]
    next_iterator, records, behind = original_backend_get_records(self, stream_arn, shard_iterator, limit)
    stream = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name)
    shard = stream.get_shard(shard_id)
    last = int(decompose_shard_iterator(next_iterator)[2])
    if not shard.is_open and last >= shard.get_max_sequence_number():
        next_iterator = None  # a closed shard read to its end: no next iterator (SHARD_END)
    return next_iterator, records, behind
K.KinesisBackend.get_records = backend_get_records
def watch_parent():
    try:
        while sys.stdin.buffer.read(1):
            pass
    finally:
        os._exit(0)
threading.Thread(target=watch_parent, daemon=True).start()
from moto.server import main
main(sys.argv[1:])
`;

export interface Emulator {
  /** e.g. http://127.0.0.1:43817 */
  endpoint: string;
  port: number;
  /** The server process. */
  pid: number;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface StartOptions {
  /** Fixed port; default: a free loopback port. */
  port?: number;
  root?: string;
  /** Milliseconds to wait for the server to answer (default 30 s). */
  startTimeoutMs?: number;
}

/**
 * Starts the emulator on 127.0.0.1 and resolves once it answers HTTP. The child does not keep this
 * process alive and ends with it; call stop() to end it earlier.
 */
export async function startEmulator(options: StartOptions = {}): Promise<Emulator> {
  const paths = await ensureMotoInstalled(options.root !== undefined ? { root: options.root } : {});
  // A free port can be taken between picking and binding: retry a few times when we picked it.
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    try {
      return await launch(paths, port, options.startTimeoutMs ?? 30_000);
    } catch (err) {
      if (options.port !== undefined || attempt >= 3 || !/in use/i.test(String(err))) throw err;
    }
  }
}

/** Keeps the newest `keep` files of a log directory (every emulator start adds one). */
function pruneLogs(dir: string, keep: number): void {
  const files = readdirSync(dir).map((name) => join(dir, name));
  if (files.length <= keep) return;
  const byAge = files.map((f) => [f, statSync(f).mtimeMs] as const).sort((a, b) => b[1] - a[1]);
  for (const [f] of byAge.slice(keep)) unlinkSync(f);
}

async function launch(paths: EmulatorPaths, port: number, timeoutMs: number): Promise<Emulator> {
  const endpoint = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(paths.python, ['-c', SERVER_SCRIPT, '-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['pipe', 'ignore', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  let stderrTail = '';
  const logFile = join(EMULATOR_LOG_DIR, `${port}.log`);
  try {
    mkdirSync(EMULATOR_LOG_DIR, { recursive: true });
    pruneLogs(EMULATOR_LOG_DIR, 100);
    appendFileSync(logFile, `--- moto ${MOTO_VERSION} on ${endpoint}, started ${new Date().toISOString()} by pid ${process.pid}\n`);
  } catch {
    // A read-only checkout: the tail below still goes into start errors.
  }
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-4000);
    try {
      appendFileSync(logFile, chunk);
    } catch {
      // as above
    }
  });
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitPromise = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    }),
  );
  child.on('error', () => {}); // reported through 'exit' / the readiness check
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  // Neither the child nor its pipes keep the event loop alive.
  child.unref();
  for (const stream of [child.stdin, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();

  const stop = async () => {
    process.off('exit', killOnExit);
    if (exited) return;
    // Waited for now: without a ref, a caller awaiting the stop could see its process end first.
    child.ref();
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
    await exitPromise;
    clearTimeout(timer);
  };

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`the AWS emulator (moto ${MOTO_VERSION}) exited at start (code ${exited.code}):\n${stderrTail.trim()}`);
    }
    try {
      const res = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      if (res.ok) return { endpoint, port, pid: child.pid!, stop };
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the AWS emulator did not answer at ${endpoint} within ${timeoutMs / 1000} s:\n${stderrTail.trim()}`);
    }
    await sleep(100);
  }
}

export interface ResolvedEndpoint {
  /** The common endpoint (AWS_ENDPOINT_URL): every service without one of its own. */
  endpoint: string;
  /** Per-service endpoints (AWS_ENDPOINT_URL_SQS and the like), when the services run apart. */
  endpoints: Partial<Record<ServiceName, string>>;
  /** True when this call started the embedded emulator. */
  started: boolean;
  stop(): Promise<void>;
}

/**
 * The embedded emulator as one moto process per busy service (SQS, DynamoDB, S3, Kinesis), each
 * reached through the SDK's per-service endpoint variable: one Python process is bound to one core
 * by its interpreter lock, and under a job SQS alone kept one busy. Kinesis on a process of its own
 * read 1.4-1.9x faster than on the common one (npm run bench:sources, README). The DynamoDB process is
 * also the common endpoint, for everything else (Lambda, Step Functions, Scheduler).
 * SLUICE_EMULATOR_PROCESSES=1 runs one process for all. A service whose own variable is set already
 * is left to that endpoint.
 */
export async function startEmulators(options: StartOptions = {}): Promise<{ endpoint: string; endpoints: Partial<Record<ServiceName, string>>; emulators: Emulator[] }> {
  if (process.env.SLUICE_EMULATOR_PROCESSES === '1') {
    const one = await startEmulator(options);
    return { endpoint: one.endpoint, endpoints: {}, emulators: [one] };
  }
  // Installed once first: the three starts would otherwise queue on the install lock.
  await ensureMotoInstalled(options.root !== undefined ? { root: options.root } : {});
  // A service given an endpoint of its own (AWS_ENDPOINT_URL_DYNAMODB=<DynamoDB Local>, say) is not
  // started here: its variable stands, and the others get a moto process each.
  const services = (['dynamodb', 'sqs', 's3', 'kinesis'] as const).filter((service) => !process.env[SERVICE_ENDPOINT_VARS[service]]?.trim());
  const started = await Promise.all(services.map(() => startEmulator(options)));
  const endpoints: Partial<Record<ServiceName, string>> = {};
  services.forEach((service, i) => (endpoints[service] = started[i]!.endpoint));
  // The common endpoint (everything else: Lambda, Step Functions, Scheduler) is a moto process.
  const common = started[0] ?? (await startEmulator(options));
  return { endpoint: common.endpoint, endpoints, emulators: started.length > 0 ? started : [common] };
}

/**
 * AWS_ENDPOINT_URL when set (LocalStack, a running emulator): nothing is started. Otherwise starts
 * the embedded emulator and sets AWS_ENDPOINT_URL (and the per-service variables) in this process
 * so loadConfig() and child processes use it (stop() unsets them again).
 */
export async function resolveEndpoint(options: StartOptions = {}): Promise<ResolvedEndpoint> {
  const configured = process.env.AWS_ENDPOINT_URL?.trim();
  if (configured) return { endpoint: configured, endpoints: {}, started: false, stop: async () => {} };
  const { endpoint, endpoints, emulators } = await startEmulators(options);
  const vars: Record<string, string> = { AWS_ENDPOINT_URL: endpoint };
  for (const [service, url] of Object.entries(endpoints) as [ServiceName, string][]) vars[SERVICE_ENDPOINT_VARS[service]] = url;
  Object.assign(process.env, vars);
  // Services left to an endpoint of their own are named too (not unset by stop()).
  const given: Partial<Record<ServiceName, string>> = {};
  for (const [service, name] of Object.entries(SERVICE_ENDPOINT_VARS) as [ServiceName, string][]) {
    if (endpoints[service] === undefined && process.env[name]?.trim()) given[service] = process.env[name]!.trim();
  }
  return {
    endpoint,
    endpoints: { ...endpoints, ...given },
    started: true,
    async stop() {
      for (const [name, value] of Object.entries(vars)) if (process.env[name] === value) delete process.env[name];
      await Promise.all(emulators.map((e) => e.stop()));
    },
  };
}
