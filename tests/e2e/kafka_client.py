"""An independent Kafka client for the e2e tests (confluent-kafka, its own bundled librdkafka):
creates topics, produces inputs, commits group offsets and reads outputs back, so no weir code
checks weir's own output.

Usage: kafka_client.py BOOTSTRAP COMMAND ARGS...  (see the functions below; output is JSON)
"""

import json
import os
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create(bs, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bs})
    for f in admin.create_topics([NewTopic(topic, int(partitions), 1)]).values():
        f.result(30)


def produce(bs, topic, path, ts_base=None):
    """One record per line of PATH: key = line number, value = the line. One record per batch:
    the test broker (Tansu 0.6) reports a partition's end as the base offset of its last batch
    plus one, so batches of one keep the end right (Apache Kafka has no such defect)."""
    p = Producer({"bootstrap.servers": bs, "batch.num.messages": 1, "linger.ms": 0})
    with open(path, "rb") as f:
        for i, line in enumerate(f.read().split(b"\n")[:-1]):
            kw = {"timestamp": int(ts_base) + i * 1000} if ts_base is not None else {}
            while True:
                try:
                    p.produce(topic, value=line, key=str(i).encode(), **kw)
                    break
                except BufferError:
                    p.poll(0.05)
    left = p.flush(60)
    assert left == 0, f"{left} records not delivered"


def produce_to(bs, topic, partition, path, ts_base):
    """One record per line of PATH, all to PARTITION, the i-th with timestamp TS_BASE + i * 1000."""
    p = Producer({"bootstrap.servers": bs, "batch.num.messages": 1, "linger.ms": 0})
    with open(path, "rb") as f:
        for i, line in enumerate(f.read().split(b"\n")[:-1]):
            p.produce(topic, value=line, partition=int(partition), timestamp=int(ts_base) + i * 1000)
            p.poll(0)
    assert p.flush(60) == 0


def produce_records(bs, topic, path, partitioner="murmur2"):
    """Each line of PATH is a JSON record {"key", "value", "headers": {name: text}}; the
    partition is librdkafka's PARTITIONER ("murmur2" is the Java client's default for keys).
    Prints the partition each record went to, in order."""
    p = Producer(
        {
            "bootstrap.servers": bs,
            "batch.num.messages": 1,
            "linger.ms": 0,
            "partitioner": partitioner,
        }
    )
    placed = {}

    def report(err, msg, i=None):
        assert err is None, err
        placed[i] = msg.partition()

    with open(path) as f:
        for i, line in enumerate(f):
            r = json.loads(line)
            headers = [(k, v.encode()) for k, v in r.get("headers", {}).items()]
            p.produce(
                topic,
                value=r["value"].encode(),
                key=r["key"].encode(),
                headers=headers,
                on_delivery=lambda err, msg, i=i: report(err, msg, i),
            )
            p.poll(0)
    assert p.flush(60) == 0
    print(json.dumps([placed[i] for i in range(len(placed))]))


def read(bs, topic, partitions, idle="3"):
    """Every record of TOPIC (read_committed), until nothing arrives for IDLE seconds."""
    c = Consumer(
        {
            "bootstrap.servers": bs,
            "group.id": "e2e-checker",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(int(partitions))])
    last = time.time()
    while time.time() - last < float(idle):
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            continue
        last = time.time()
        headers = {k: (v or b"").decode("utf-8", "replace") for k, v in (m.headers() or [])}
        print(
            json.dumps(
                {
                    "p": m.partition(),
                    "o": m.offset(),
                    "ts": m.timestamp()[1],
                    "key": None if m.key() is None else m.key().decode("utf-8", "replace"),
                    "value": (m.value() or b"").decode("utf-8", "replace"),
                    "headers": headers,
                }
            )
        )
    c.close()


def leave_open(bs, transactional_id, topic, partition, count):
    """Produce COUNT records to TOPIC/PARTITION in a transaction as TRANSACTIONAL_ID and exit
    without committing or aborting it: a crashed producer's lingering transaction."""
    p = Producer({"bootstrap.servers": bs, "transactional.id": transactional_id})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(int(count)):
        p.produce(topic, value=b"lingering-%d" % i, partition=int(partition))
    left = p.flush(30)
    assert left == 0, f"{left} records not delivered"
    sys.stdout.flush()
    os._exit(0)


def produce_one(bs, topic, partition, value):
    """One committed record (its own transaction) to TOPIC/PARTITION."""
    p = Producer({"bootstrap.servers": bs, "transactional.id": "e2e-one-%d" % time.time_ns()})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(topic, value=value.encode(), partition=int(partition))
    p.commit_transaction(30)


def commit(bs, group, topic, *offsets):
    """Commit OFFSETS (partition:offset ...) for GROUP."""
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False})
    tps = []
    for po in offsets:
        p, o = po.split(":")
        tps.append(TopicPartition(topic, int(p), int(o)))
    c.commit(offsets=tps, asynchronous=False)
    c.close()


def committed(bs, group, topic, partitions):
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "enable.auto.commit": False})
    got = c.committed([TopicPartition(topic, p) for p in range(int(partitions))], timeout=30)
    print(json.dumps([t.offset for t in got]))
    c.close()


if __name__ == "__main__":
    bs, command, *args = sys.argv[1:]
    commands = {
        "create": create,
        "produce": produce,
        "produce-records": produce_records,
        "produce-to": produce_to,
        "read": read,
        "commit": commit,
        "leave-open": leave_open,
        "produce-one": produce_one,
        "committed": committed,
    }
    commands[command](bs, *args)
