#!/usr/bin/env python3
"""Reference for pool-bench: Python's process pools on tiny tasks, f(x) = x + 1.
Standard library only.

Modes (all with --workers processes, default 2):
  imap1     Pool.imap_unordered(f, range(N), chunksize=1)
  map       Pool.map(f, range(N))                    (Python's default chunksize: N / (4 * workers), rounded up)
  executor  ProcessPoolExecutor.map(f, range(N))     (chunksize 1)
  latency   Pool.apply(f, (i,)) one at a time: --warmup calls, then N timed; p50/p99 in µs

Timing: the pool is made and its workers started (a map of 100 tasks) before the
clock starts; the clock stops when the last result is in (CLOCK_MONOTONIC).
Every result is checked (the sum of the outputs; each output in latency mode);
a wrong one exits with status 2 and no figures.

Output: one line
  pool_reference mode=M workers=W tasks=N chunksize=C seconds=S tasks_per_s=X
  pool_reference mode=latency workers=W tasks=N warmup=K p50_us=.. p99_us=..
"""
import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import Pool

CLOCK = time.CLOCK_MONOTONIC


def now_ns():
    return time.clock_gettime_ns(CLOCK)


def f(x):
    return x + 1


def wrong(msg):
    print(f"pool_reference ERROR {msg}", file=sys.stderr)
    sys.exit(2)


def default_chunksize(n, workers):
    # What Pool.map picks when given no chunksize (multiprocessing/pool.py, _map_async).
    chunksize, extra = divmod(n, workers * 4)
    return chunksize + 1 if extra else chunksize


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["imap1", "map", "executor", "latency"], default="imap1")
    ap.add_argument("-n", type=int, default=None, help="tasks (default 20000; 5000 for latency)")
    ap.add_argument("--warmup", type=int, default=500, help="untimed apply calls before latency's (default 500)")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    n = a.n if a.n is not None else (5000 if a.mode == "latency" else 20000)
    if n < 1:
        ap.error("N must be >= 1")

    if a.mode == "executor":
        with ProcessPoolExecutor(a.workers) as ex:
            if sum(ex.map(f, range(100))) != 100 * 101 // 2:  # workers started
                wrong("wrong results in the warm-up")
            t0 = now_ns()
            total = sum(ex.map(f, range(n)))
            t1 = now_ns()
        chunksize = 1
    else:
        with Pool(a.workers) as pool:
            if sum(pool.map(f, range(100))) != 100 * 101 // 2:  # workers started
                wrong("wrong results in the warm-up")
            if a.mode == "latency":
                for i in range(a.warmup):
                    if pool.apply(f, (i,)) != i + 1:
                        wrong(f"apply({i}) gave a wrong result in the warm-up")
                s = [0] * n
                for i in range(n):
                    t0 = now_ns()
                    y = pool.apply(f, (i,))
                    s[i] = now_ns() - t0
                    if y != i + 1:
                        wrong(f"apply({i}) gave {y}")
                s.sort()
                print(f"pool_reference mode=latency workers={a.workers} tasks={n} warmup={a.warmup} "
                      f"p50_us={s[n // 2] / 1000:.2f} p99_us={s[n * 99 // 100] / 1000:.2f}")
                return
            t0 = now_ns()
            if a.mode == "imap1":
                total = sum(pool.imap_unordered(f, range(n), chunksize=1))
                chunksize = 1
            else:
                total = sum(pool.map(f, range(n)))
                chunksize = default_chunksize(n, a.workers)
            t1 = now_ns()
    if total != n * (n + 1) // 2:
        wrong(f"the outputs sum to {total}, not {n * (n + 1) // 2}")
    secs = (t1 - t0) / 1e9
    print(f"pool_reference mode={a.mode} workers={a.workers} tasks={n} chunksize={chunksize} "
          f"seconds={secs:.6f} tasks_per_s={n / secs:.1f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
