#!/usr/bin/env python3
"""Runs fuzz targets one at a time (one libFuzzer process, no -jobs/-workers), each until
coverage plateaus or a time limit, and prints a summary row per target.

    python3 fuzz/campaign.py [--max 360] [--plateau 180] [target ...]

Run from the repository root after `cargo +nightly fuzz build` (the binaries are taken
from fuzz/target/x86_64-unknown-linux-gnu/release). A target stops at the first crash,
after --max seconds, or once neither `cov:` nor `ft:` has grown for --plateau seconds
(SIGINT, so libFuzzer prints its final statistics). Logs go to fuzz/artifacts/logs/.
"""
import argparse
import os
import queue
import threading
import re
import signal
import subprocess
import sys
import time

BIN = "fuzz/target/x86_64-unknown-linux-gnu/release"
SHARED = "../shared/corpus/tcpdump-tests"
MAX_LEN = {
    "parse_packet": 65536,
    "capture_read": 1 << 20,
    "load_toml": 65536,
    "load_json": 65536,
    "log_format": 4096,
    "engine": 16384,
}
STAT = re.compile(r"^#(\d+)\s+\S+\s+cov: (\d+) ft: (\d+)")


def run(target, max_secs, plateau):
    corpus = f"fuzz/corpus/{target}"
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(f"fuzz/artifacts/{target}", exist_ok=True)
    os.makedirs("fuzz/artifacts/logs", exist_ok=True)
    dirs = [corpus, f"fuzz/seeds/{target}"]
    if target == "capture_read" and os.path.isdir(SHARED):
        dirs.append(SHARED)
    cmd = [
        f"{BIN}/{target}",
        f"-artifact_prefix=fuzz/artifacts/{target}/",
        f"-max_len={MAX_LEN[target]}",
        "-rss_limit_mb=2048",
        "-timeout=10",
        "-report_slow_units=1",
        "-print_final_stats=1",
        f"-max_total_time={max_secs}",
        *dirs,
    ]
    log_path = f"fuzz/artifacts/logs/{target}.log"
    start = time.time()
    last_growth = start
    best = (0, 0)
    execs, cov, ft = 0, 0, 0
    crashed = False
    with open(log_path, "w") as log:
        log.write(" ".join(cmd) + "\n")
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             errors="replace")
        lines = queue.Queue()

        def pump():
            for line in p.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        interrupted = False
        while True:
            try:
                line = lines.get(timeout=5)
            except queue.Empty:
                line = ""
            if line is None:
                break
            log.write(line)
            m = STAT.match(line)
            now = time.time()
            if m:
                execs, cov, ft = int(m[1]), int(m[2]), int(m[3])
                if cov > best[0] or ft > best[1]:
                    best = (max(cov, best[0]), max(ft, best[1]))
                    last_growth = now
            if m2 := re.search(r"stat::number_of_executed_units: (\d+)", line):
                execs = int(m2[1])
            if "ERROR: libFuzzer" in line or "panicked at" in line:
                crashed = True
            if not interrupted and now - last_growth > plateau and now - start > plateau:
                log.write(f"campaign.py: no new cov/ft for {plateau} s, interrupting\n")
                p.send_signal(signal.SIGINT)
                interrupted = True
        p.wait()
    secs = time.time() - start
    return target, round(secs), execs, cov, ft, crashed, p.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max", type=int, default=360)
    ap.add_argument("--plateau", type=int, default=180)
    ap.add_argument("targets", nargs="*", default=list(MAX_LEN))
    a = ap.parse_args()
    print("| target | seconds | executions | cov | ft | crashed | rc |")
    for t in a.targets:
        row = run(t, a.max, a.plateau)
        print("| " + " | ".join(str(x) for x in row) + " |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
