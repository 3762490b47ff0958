#!/usr/bin/env python3
"""The Python half of `make demo`'s speed scene: small items through Python's
multiprocessing.Queue for a few seconds, from one producer process to the consumer in
this process, as the Swift half moves them through a Queue<Item>.

The item is the Swift half's Item as a dict:
    {"id": i, "name": "item-<i>", "score": i * 0.5, "tags": ["a", "b", "c"], "ok": True}

The producer says it is ready, is told the deadline (time.monotonic()), puts items 0,
1, 2, ... until then, and None after them. The queue is bounded (--maxsize), as the Swift
half's is, so that the producer cannot run ahead: an unbounded queue's producer keeps the
feeder thread that writes its items to the pipe from the GIL (a third as many items
arrive in time), and the run ends with seconds of backlog. The consumer checks that every
item is the next one, whole, counts those that arrived before the deadline, and takes the
rest. Its get() has no timeout, Python's fastest get: with one, each get polls the pipe
first, and a third to a half fewer items arrived here (`make demo` gives up on this
script after 60 seconds instead).

    python3 Scripts/python-queue-speed.py [--seconds 2] [--maxsize 1000] [--connection FD]

Prints one line; with --connection, sends the result as JSON on that descriptor instead
(a multiprocessing.connection.Connection: `make demo` hands it one).
"""
import argparse
import json
import multiprocessing as mp
import sys
import time
from multiprocessing.connection import Connection


def item(i):
    return {"id": i, "name": f"item-{i}", "score": i * 0.5, "tags": ["a", "b", "c"], "ok": True}


def producer(queue, control):
    control.send("ready")
    deadline = control.recv()
    put = queue.put
    i = 0
    while i % 64 or time.monotonic() < deadline:
        put(item(i))
        i += 1
    put(None)
    queue.close()
    queue.join_thread()  # every item is in the pipe
    control.send(i)


def run(seconds, maxsize):
    queue = mp.Queue(maxsize)
    mine, theirs = mp.Pipe()
    child = mp.Process(target=producer, args=(queue, theirs), daemon=True)
    child.start()
    if not mine.poll(30):
        raise SystemExit("the producer process did not start")
    mine.recv()
    start = time.monotonic()
    deadline = start + seconds
    mine.send(deadline)

    get = queue.get
    received = in_time = wrong = 0
    while True:
        got = get()
        if got is None:
            break
        if got != item(received):
            wrong += 1
        received += 1
        if time.monotonic() < deadline:
            in_time = received
    put = mine.recv() if mine.poll(30) else -1
    child.join(30)
    return {
        "put": put, "received": received, "in_time": in_time, "wrong": wrong,
        "failed_producers": 0 if child.exitcode == 0 else 1, "python": sys.version.split()[0],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--maxsize", type=int, default=1000)
    parser.add_argument("--connection", type=int, default=None, help="send the result as JSON on this descriptor")
    arguments = parser.parse_args()
    result = run(arguments.seconds, arguments.maxsize)
    if arguments.connection is not None:
        Connection(arguments.connection).send_bytes(json.dumps(result).encode())
    else:
        print(f"Python {result['python']} multiprocessing.Queue({arguments.maxsize}): {result['in_time']:,} items "
              f"in {arguments.seconds:g} s, {result['in_time'] / arguments.seconds:,.0f} items/s; put {result['put']:,}, "
              f"received {result['received']:,}, not the next one {result['wrong']}, "
              f"failed producers {result['failed_producers']}")
    ok = result["wrong"] == 0 and result["received"] == result["put"] and result["failed_producers"] == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
