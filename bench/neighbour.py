#!/usr/bin/env python3
"""A neighbour on the same filesystem, as a small database or log writer would be: every
10 ms it appends 4 KiB to FILE and fsyncs it, timing each fsync, until SIGTERM; then it
prints the latencies (seconds, JSON list) on stdout. It prints `ready` on stderr once its
first fsync is done, so the caller starts what it measures against a neighbour already
running.

    neighbour.py FILE
"""

import json
import os
import signal
import sys
import time

PERIOD = 0.010
BLOCK = b"n" * 4096


def main():
    path = sys.argv[1]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    latencies = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        tick = time.perf_counter()
        while not stop:
            os.write(fd, BLOCK)
            start = time.perf_counter()
            os.fsync(fd)
            latencies.append(time.perf_counter() - start)
            if len(latencies) == 1:
                print("ready", file=sys.stderr, flush=True)
            # A late fsync delays the next one, never makes a burst to catch up.
            tick = max(tick + PERIOD, time.perf_counter())
            time.sleep(max(0.0, tick - time.perf_counter()))
    finally:
        os.close(fd)
        os.unlink(path)
    # The first fsync ran before the measured command started.
    print(json.dumps(latencies[1:]))


if __name__ == "__main__":
    main()
