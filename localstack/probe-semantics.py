"""Probes the SQS FIFO behaviours where emulators and AWS are known to differ, against one endpoint.
Usage: .venv-localstack/bin/python localstack/probe-semantics.py http://127.0.0.1:PORT
One line per probe: name, what the endpoint did, what AWS does (from the AWS documentation and
knowledge center, see localstack/README.md). The results are recorded in localstack/README.md;
this script is how they were found, not a test (it asserts nothing).
"""
import sys
import time
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EP = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:4566"
sqs = boto3.client("sqs", endpoint_url=EP, region_name="us-east-1", aws_access_key_id="test",
                   aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}))


def fifo(visibility: int) -> str:
    name = f"probe-{uuid.uuid4().hex[:8]}.fifo"
    return sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true", "VisibilityTimeout": str(visibility)})["QueueUrl"]


def send(q: str, body: str, dedup: str, group: str = "g") -> None:
    sqs.send_message(QueueUrl=q, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=dedup)


def receive(q: str, n: int = 10, wait: int = 1) -> list:
    return sqs.receive_message(QueueUrl=q, MaxNumberOfMessages=n, WaitTimeSeconds=wait).get("Messages", [])


def outcome(fn) -> str:
    try:
        r = fn()
        failed = r.get("Failed") if isinstance(r, dict) else None
        if failed:
            f = failed[0]
            return f"batch entry failed: {f.get('Code')} (SenderFault={f.get('SenderFault')}) {f.get('Message', '')[:80]}"
        return "succeeded"
    except ClientError as e:
        return f"error {e.response['Error'].get('Code')}: {e.response['Error'].get('Message', '')[:80]}"


def probe(name: str, aws: str):
    def deco(fn):
        try:
            got = fn()
        except Exception as e:  # a probe that breaks says so and the others still run
            got = f"probe failed: {type(e).__name__}: {e}"
        print(f"{name}\n  endpoint: {got}\n  AWS:      {aws}", flush=True)
        return fn
    return deco


@probe("delete with a receipt handle whose visibility timeout has passed (FIFO, not received again)",
       "InvalidParameterValue 'The receipt handle has expired' (batch: entry failure, sender fault)")
def _():
    q = fifo(1)
    send(q, "a", "a")
    h = receive(q)[0]["ReceiptHandle"]
    time.sleep(2.5)
    single = outcome(lambda: sqs.delete_message(QueueUrl=q, ReceiptHandle=h))
    left = len(receive(q, wait=1))
    return f"DeleteMessage {single}; message still in queue: {left == 1}"


@probe("DeleteMessageBatch with the older of two receipt handles (FIFO, received again after the timeout)",
       "entry failure InvalidParameterValue 'The receipt handle has expired' (sender fault); the message stays")
def _():
    q = fifo(1)
    send(q, "a", "a")
    old = receive(q)[0]["ReceiptHandle"]
    time.sleep(2.5)
    again = receive(q)
    batch = outcome(lambda: sqs.delete_message_batch(QueueUrl=q, Entries=[{"Id": "0", "ReceiptHandle": old}]))
    time.sleep(1.5)
    left = len(receive(q, wait=1))
    return f"received again: {len(again) == 1}; DeleteMessageBatch {batch}; message still in queue: {left == 1}"


@probe("ChangeMessageVisibility with a receipt handle whose visibility timeout has passed (FIFO)",
       "an error: the handle expired with the visibility timeout (knowledge center: expired handles fail on FIFO)")
def _():
    q = fifo(1)
    send(q, "a", "a")
    h = receive(q)[0]["ReceiptHandle"]
    time.sleep(2.5)
    return "ChangeMessageVisibility " + outcome(lambda: sqs.change_message_visibility(QueueUrl=q, ReceiptHandle=h, VisibilityTimeout=30))


@probe("send with a deduplication id already sent and deleted, within 5 minutes (FIFO)",
       "accepted, not delivered: the deduplication interval is 5 minutes, deletion does not end it")
def _():
    q = fifo(30)
    send(q, "first", "d1")
    m = receive(q)[0]
    sqs.delete_message(QueueUrl=q, ReceiptHandle=m["ReceiptHandle"])
    send(q, "second", "d1")
    got = [x["Body"] for x in receive(q, wait=2)]
    return f"delivered again: {got}" if got else "accepted, not delivered"


@probe("order after a visibility timeout: a1 received and not deleted, a2 behind it in the same group",
       "a1 again, then a2 (a group's messages are delivered in order; a1 is visible again)")
def _():
    q = fifo(1)
    send(q, "a1", "1")
    send(q, "a2", "2")
    first = [x["Body"] for x in receive(q, n=1)]
    time.sleep(2.5)
    got = []
    for _ in range(3):
        got += [x["Body"] for x in receive(q, n=10, wait=1)]
        if len(got) >= 2:
            break
    return f"first receive {first}, after the timeout {got}"


@probe("long poll on a queue whose only visible message is behind an in-flight one of its group",
       "waits the whole WaitTimeSeconds and returns nothing (the group is blocked)")
def _():
    q = fifo(60)
    send(q, "b1", "1")
    send(q, "b2", "2")
    receive(q, n=1)
    t = time.time()
    got = receive(q, n=10, wait=3)
    return f"returned {[x['Body'] for x in got]} after {time.time() - t:.1f} s"
