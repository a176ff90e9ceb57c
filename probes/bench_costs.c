/* For bench/probe_costs.py only: what each piece of a syscall probe costs on this kernel, one
 * piece per build (-DWB_PART=N), on raw sys_enter/sys_exit of every task. Part 0 is the floor
 * (empty programs); every other part is measured against it.
 *   1  a per-CPU slot written at entry and read at exit (the probes' state, no helper call)
 *   2  part 1 plus a clock read in each hook (what an exact latency histogram needs)
 *   3  one trivial helper call in each hook (bpf_get_current_pid_tgid)
 *   4  the cgroup-id read in each hook (the sandbox filter)
 *   5  task-local storage: got (created) at entry, looked up at exit
 */
struct wb_part_slot {
    u64 ts;
    u64 sink;
};

BPF_PERCPU_ARRAY(wb_part_slots, struct wb_part_slot, 1);
BPF_TASK_STORAGE(wb_part_tasks, struct wb_part_slot);

/* Parts 3 and 4: the same helper call in both hooks. */
static __always_inline void wb_part_call(void)
{
    int zero = 0;
    struct wb_part_slot *s = wb_part_slots.lookup(&zero);
    if (!s)
        return;
#if WB_PART == 3
    s->sink += bpf_get_current_pid_tgid();
#elif WB_PART == 4
    s->sink += bpf_get_current_cgroup_id();
#endif
}

int wb_part_enter(struct bpf_raw_tracepoint_args *ctx)
{
#if WB_PART == 1 || WB_PART == 2
    int zero = 0;
    struct wb_part_slot *s = wb_part_slots.lookup(&zero);
    if (!s)
        return 0;
#if WB_PART == 2
    s->ts = bpf_ktime_get_ns();
#else
    s->ts = ctx->args[1] + 1;
#endif
#elif WB_PART == 3 || WB_PART == 4
    wb_part_call();
#elif WB_PART == 5
    struct wb_part_slot *t = wb_part_tasks.task_storage_get(bpf_get_current_task_btf(), NULL,
                                                            BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (t)
        t->ts = ctx->args[1] + 1;
#endif
    return 0;
}

int wb_part_exit(struct bpf_raw_tracepoint_args *ctx)
{
#if WB_PART == 1 || WB_PART == 2
    int zero = 0;
    struct wb_part_slot *s = wb_part_slots.lookup(&zero);
    if (!s)
        return 0;
#if WB_PART == 2
    s->sink += bpf_ktime_get_ns() - s->ts;
#else
    s->sink += s->ts;
#endif
    s->ts = 0;
#elif WB_PART == 3 || WB_PART == 4
    wb_part_call();
#elif WB_PART == 5
    struct wb_part_slot *t = wb_part_tasks.task_storage_get(bpf_get_current_task_btf(), NULL, 0);
    if (t)
        t->sink += t->ts;
#endif
    return 0;
}
