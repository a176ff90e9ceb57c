"""An app that needs more memory than its sandbox allows: the cgroup's OOM killer ends it."""

import sys

blocks = []
for i in range(1, 65):
    blocks.append(bytearray(8 << 20))
    print(f"memory-app: holding {8 * i} MiB", flush=True)
print("memory-app: done", file=sys.stderr)
