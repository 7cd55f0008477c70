#!/usr/bin/env python3
"""The machine's own round trip between two processes, with no BEAM and no hordec involved.

Two OS processes ping-pong one byte over a Unix socketpair in windows of 150 ms, with an idle second between
rounds, and print the p50 round trip of each window. On the 2-core VM this project is measured on, the first
window after an idle second is fast and the following ones are ~10x slower: a caller that waits for one reply
per request pays the slow figure in any back-to-back benchmark (README, "Benchmarks").

    python3 bench/rtt_probe.py [rounds]
"""
import os
import socket
import statistics
import sys
import time


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.fork() == 0:
        a.close()
        while True:
            data = b.recv(64)
            if not data:
                os._exit(0)
            b.send(data)
    b.close()
    for r in range(rounds):
        windows = []
        for _ in range(8):
            times = []
            end = time.perf_counter() + 0.15
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                a.send(b"x")
                a.recv(64)
                times.append(time.perf_counter() - t0)
            windows.append(statistics.median(times) * 1e6)
        print(f"round {r + 1}: p50 per 150 ms window (us): " + " ".join(f"{w:.1f}" for w in windows))
        time.sleep(1)
    a.close()


if __name__ == "__main__":
    main()
