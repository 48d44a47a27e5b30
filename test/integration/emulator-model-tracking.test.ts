/**
 * The embedded emulator's model tracking patch (lib/local/emulator.ts MODEL_TRACKING_PATCH): moto
 * keeps every model object it creates in a class-level list for the life of the process, each
 * DynamoDB Query's deep copy of the items it answers with among them, so a long job's emulator grew
 * without bound (12 GB in half an hour at P=5000). Checked on moto's own classes, deterministically:
 * what stays reachable after ten copies of an item, and after an SQS message and an S3 object are
 * gone.
 */
import { describe, expect, it } from 'vitest';
import { MODEL_TRACKING_PATCH } from '../../lib/local/emulator';
import { runMotoPython as run } from '../setup/moto-python';

const SCENARIO = `
import copy, gc
from moto.dynamodb.models.dynamo_type import Item, DynamoType
from moto.sqs.models import Message
item = Item(DynamoType({"S": "JOB#1#UNITS#0"}), DynamoType({"S": "UNIT#0"}), {"report": {"M": {"s0": {"N": "1"}}}})
for _ in range(10):
    answer = copy.deepcopy(item)  # what each Query does with the items it returns
del answer
message = Message("id-1", "body")
del message
gc.collect()
alive = sum(1 for o in gc.get_objects() if isinstance(o, (Item, Message)))
print("alive", alive)
`;

describe('embedded emulator: model objects are not kept after use', () => {
  it('moto as released keeps every copy a query made; patched, only the stored item is alive', async () => {
    expect(await run(SCENARIO)).toBe('alive 12');
    expect(await run(`${MODEL_TRACKING_PATCH}\n${SCENARIO}`)).toBe('alive 1');
  });
});
