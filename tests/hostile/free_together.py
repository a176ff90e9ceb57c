"""Runs in a process of its own (a crash must not take the test runner with it): loads N probe
objects, then gives them all back at the same moment from N threads — what N sessions whose
sandboxes end together do. Prints "freed N" when the process survives."""

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from workbench.tracing import loader  # noqa: E402

n = int(sys.argv[1])
objects = [loader.acquire(loader.Options()) for _ in range(n)]
together = threading.Barrier(n)


def give_back(obj) -> None:
    together.wait()
    loader.release(obj, keep=False)


threads = [threading.Thread(target=give_back, args=(o,)) for o in objects]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(f"freed {n}")
