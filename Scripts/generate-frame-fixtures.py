#!/usr/bin/env python3
"""Writes Fixtures/frames/: a byte stream written by Python's own
multiprocessing.connection.Connection.send_bytes, and what it holds.

  python3 Scripts/generate-frame-fixtures.py   (needs: pip install msgpack)

python-send-bytes.bin   the raw bytes a reader of the pipe receives
python-send-bytes.json  {"payloads": [{"description", "msgpack": hex payload}]}

The payloads cover an empty frame, small MessagePack values, and one over
16384 bytes (Python sends its header and body in two writes then). Frames over
0x7fffffff bytes (header -1 plus an 8-byte length) are too large for a fixture;
the Swift tests check that header against the same rule instead.
"""
import json
import os
import sys
from multiprocessing.connection import Connection

try:
    import msgpack
except ImportError:
    sys.exit("error: the Python package 'msgpack' is missing; install it with: pip install msgpack")

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Fixtures", "frames")

PAYLOADS = [
    ("a map, as a Swift struct Order {id, item, price} encodes", msgpack.packb({"id": 1, "item": "tea", "price": 3.5})),
    ("an empty payload (a zero-length frame)", b""),
    ("the string 'hello', the seed's message", msgpack.packb("hello")),
    ("an array of 1000 integers", msgpack.packb(list(range(1000)))),
    ("a 20000-byte binary: Python writes header and body separately above 16384 bytes",
     msgpack.packb(bytes(i % 251 for i in range(20000)), use_bin_type=True)),
]


def main():
    read_fd, write_fd = os.pipe()
    writer = Connection(write_fd, readable=False)
    chunks = []
    for _, payload in PAYLOADS:
        writer.send_bytes(payload)
        # Drain as we go: the pipe would fill up otherwise.
        while True:
            os.set_blocking(read_fd, False)
            try:
                chunk = os.read(read_fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    writer.close()
    os.set_blocking(read_fd, True)
    while True:
        chunk = os.read(read_fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)

    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "python-send-bytes.bin"), "wb") as f:
        f.write(b"".join(chunks))
    index = {"payloads": [{"description": d, "msgpack": p.hex()} for d, p in PAYLOADS]}
    with open(os.path.join(OUT, "python-send-bytes.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    print(f"wrote {len(PAYLOADS)} frames, {sum(map(len, chunks))} bytes, to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
