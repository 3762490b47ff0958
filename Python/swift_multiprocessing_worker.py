"""A Python worker for swift-multiprocessing's ProcessPool.

The pool starts this program with its connection at descriptor 3 (a duplex Unix
socket, in Python's multiprocessing.connection framing). It may send several
requests before the first reply; the worker runs them in the order they came and
answers each, in that order, before it runs the next. Every frame holds one
MessagePack map (see the README, "Process pool: the worker protocol"):

    request  {"id": int, "task": str, "input": bin}    input: the argument, as MessagePack
    reply    {"id": int, "output": bin}                 output: the result, as MessagePack
          or {"id": int, "error": {"type": str, "description": str}}

    a chunk  {"id": int, "task": str, "batch": bin}      batch: the inputs, as one MessagePack array
    reply    {"id": int, "outputs": bin}                when every input's call returned: the
                                                        outputs, as one MessagePack array, in order
          or {"id": int, "results": [{"output": bin} or {"error": {...}}, ...]}   one per input, in order
          or {"id": int, "error": {...}}                the batch could not be read, or no such task:
                                                        every input fails with it
    (a chunk: a map of more than one input with chunkSize > 1; its last may hold one input)

A worker ends at end of file on its connection (the pool closed it, or died),
and when the process that started it ends, even in the middle of a task.

Use: a script that registers its functions and serves them,

    from swift_multiprocessing_worker import serve

    def thumbnail(image):
        ...

    serve({"thumbnail": thumbnail})

and, in Swift, `ProcessPool(executable: "/usr/bin/env", arguments: ["python3", "script.py"])`
with `ProcessPool.Task<Image, Thumbnail>("thumbnail")` naming it.

Needs the `msgpack` package; standard library otherwise.
"""

import os
import select
import sys
import threading
from multiprocessing.connection import Connection

import msgpack

__all__ = ["serve"]


def _watch_parent(parent):
    """Ends this process when `parent` ends (a pidfd where there is one, else polling)."""
    try:
        handle = os.pidfd_open(parent)
    except (AttributeError, OSError):
        handle = None
    if os.getppid() != parent:
        os._exit(0)

    def wait():
        if handle is not None:
            select.select([handle], [], [])
        else:
            while os.getppid() == parent:
                threading.Event().wait(0.1)
        os._exit(0)

    threading.Thread(target=wait, daemon=True).start()


def _unpack(packed):
    # Swift's [Int: V] has integer keys, which msgpack refuses by default.
    return msgpack.unpackb(packed, raw=False, strict_map_key=False)


def _error(error):
    """A task's error as it goes back to the caller: its type's name and its text."""
    return {"error": {"type": type(error).__qualname__, "description": str(error)}}


def _run_one(function, packed):
    try:
        return {"output": msgpack.packb(function(_unpack(packed)), use_bin_type=True)}
    except Exception as error:  # a task's error goes back to the caller, typed
        return _error(error)


def _run_batch(function, batch):
    """A chunk: the outputs as one array when every call returned, else each input's outcome."""
    try:
        inputs = _unpack(batch)
        if not isinstance(inputs, list):
            raise TypeError(f"a chunk's batch holds a {type(inputs).__name__}, not an array")
    except Exception as error:
        return _error(error)
    results = []
    for argument in inputs:
        try:
            results.append((True, function(argument)))
        except Exception as error:
            results.append((False, error))
    if all(ok for ok, _ in results):
        try:
            return {"outputs": msgpack.packb([value for _, value in results], use_bin_type=True)}
        except Exception:
            pass  # an output that cannot be packed is that input's failure alone, below
    outcomes = []
    for ok, value in results:
        if not ok:
            outcomes.append(_error(value))
            continue
        try:
            outcomes.append({"output": msgpack.packb(value, use_bin_type=True)})
        except Exception as error:
            outcomes.append(_error(error))
    return {"results": outcomes}


def serve(tasks, fd=3):
    """Runs `tasks` (a dict from name to a function of one argument) for the pool
    on descriptor `fd`, until the pool lets this worker go. Never returns."""
    _watch_parent(os.getppid())
    os.set_inheritable(fd, False)  # a process a task starts must not hold the pool's connection open
    connection = Connection(fd)
    while True:
        try:
            request = msgpack.unpackb(connection.recv_bytes(), raw=False)
        except (EOFError, OSError):
            os._exit(0)
        reply = {"id": request["id"]}
        function = tasks.get(request["task"])
        if function is None:
            reply["error"] = {
                "type": "unknownTask",
                "description": f"this worker has no task named {request['task']!r} (tasks: {sorted(tasks)})",
            }
        elif "batch" in request:
            reply.update(_run_batch(function, request["batch"]))
        else:
            reply.update(_run_one(function, request["input"]))
        try:
            connection.send_bytes(msgpack.packb(reply, use_bin_type=True))
        except OSError:
            os._exit(0)
