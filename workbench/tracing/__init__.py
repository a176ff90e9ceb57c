"""The probes' user side: eBPF through bcc (tracer, loader, ring-buffer reader, decoders) and the
samplers that need no eBPF (namespace membership, the seccomp audit log, per-process usage).

Knows workbench.core only. Entry point: `workbench.tracing.tracer.Tracer`.
"""
