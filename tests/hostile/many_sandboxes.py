"""Runs N traced sandboxes, all started at the same moment from N threads, in a process of its
own (a crash here must not take the test runner with it). Prints one JSON line per sandbox:
{"i", "status", "writes", "probes"}; the test checks them."""

import json
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from tests.hostile.conftest import run_sandbox  # noqa: E402

n = int(sys.argv[1])
start = threading.Barrier(n)
lock = threading.Lock()


def one(i: int) -> None:
    start.wait()
    r = run_sandbox(["dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={23 + 2 * i}", "status=none"],
                    trace=True, keep_events=False, timeout=180)
    line = json.dumps({"i": i, "status": r.status, "writes": r.report["syscalls"].get("write"),
                       "probes": sorted({p["state"] for p in r.report["probes"].values()})})
    with lock:
        print(line, flush=True)


threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
