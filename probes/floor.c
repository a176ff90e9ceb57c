/* The floor for bench/overhead.py: empty programs on raw sys_enter and sys_exit. What merely
 * switching syscall tracing on costs on this kernel, against which the probes are judged. */
int floor_enter(struct bpf_raw_tracepoint_args *ctx) { return 0; }
int floor_exit(struct bpf_raw_tracepoint_args *ctx) { return 0; }
