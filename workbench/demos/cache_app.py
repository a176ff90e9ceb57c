"""A small app that fails inside the default sandbox for a reason it cannot see: it reads its
configuration, then creates a cache directory, which the demo profile's seccomp policy refuses."""

import os
import sys

print("cache-app: starting")
with open("/etc/os-release") as f:
    print("cache-app: running on", f.readline().strip())
cache = "/tmp/cache-app/data"
try:
    os.makedirs(cache)
except OSError as exc:
    print(f"cache-app: cannot create {cache}: {exc.strerror}", file=sys.stderr)
    sys.exit(1)
print("cache-app: cache ready")
