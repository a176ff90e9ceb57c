/* Processes: new tasks, exec, exit (code or signal), fatal signals, seccomp SIGSYS, OOM kills.
 *
 * Ordinary tracepoints (their layout comes from tracefs at run time through bcc): these events are
 * rare, so the convenience costs nothing. Records go to the wb_ctrl ring buffer, which is always on
 * (the report needs processes and denials even when the syscall stream is off).
 *
 * Exit status: sched_process_exit carries none, so it is built from exit/exit_group's argument
 * (syscalls.c) or from the fatal signal delivered here, and sent when the thread group dies.
 */

/* Signals whose default action ends the process (asm-generic signal numbers, stable ABI). */
#define WB_FATAL_BY_DEFAULT ((1ULL << 1) | (1ULL << 2) | (1ULL << 3) | (1ULL << 4) | (1ULL << 5) | \
    (1ULL << 6) | (1ULL << 7) | (1ULL << 8) | (1ULL << 9) | (1ULL << 10) | (1ULL << 11) |        \
    (1ULL << 12) | (1ULL << 13) | (1ULL << 14) | (1ULL << 15) | (1ULL << 16) | (1ULL << 24) |   \
    (1ULL << 25) | (1ULL << 26) | (1ULL << 27) | (1ULL << 29) | (1ULL << 30) | (1ULL << 31))
#define WB_SIGSYS 31
#define WB_SYS_SECCOMP 1       /* si_code of a SIGSYS raised by seccomp */
#define WB_AUDIT_ARCH_X86_64 0xC000003EU
#define WB_AUDIT_ARCH_I386 0x40000003U
#define WB_X32_SYSCALL_BIT 0x40000000
#define WB_CLONE_THREAD 0x00010000
#define WB_SA_IMMUTABLE 0x00800000 /* kernel-internal sa_flags bit set by seccomp's kill */

BPF_PERCPU_ARRAY(wb_sigsys_scratch, struct wb_sigsys, 1);

TRACEPOINT_PROBE(task, task_newtask)
{
    struct wb_config *c = wb_cfg();
    if (!c || c->mode == WB_MODE_OFF)
        return 0;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if (!wb_in_sandbox(c, pid_tgid >> 32))
        return 0;
    u32 child = args->pid;
    if (c->mode == WB_MODE_PIDS && !(args->clone_flags & WB_CLONE_THREAD)) {
        u8 one = 1;
        wb_pids.update(&child, &one);
    }
    if (!c->gate_open)
        return 0;
    struct wb_newtask_rec *r = wb_ctrl.ringbuf_reserve(sizeof(*r));
    if (!r) {
        wb_count_lost(WB_LOST_CTRL);
        return 0;
    }
    wb_fill_head(&r->h, WB_REC_NEWTASK, pid_tgid);
    r->clone_flags = args->clone_flags;
    r->child = child;
    r->pad = 0;
    wb_ctrl.ringbuf_submit(r, 0);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    struct wb_config *c = wb_cfg();
    if (!c || c->mode == WB_MODE_OFF || !c->gate_open)
        return 0;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    if (!wb_in_sandbox(c, pid_tgid >> 32))
        return 0;
    struct wb_exec_rec *r = wb_ctrl.ringbuf_reserve(sizeof(*r));
    if (!r) {
        wb_count_lost(WB_LOST_CTRL);
        return 0;
    }
    wb_fill_head(&r->h, WB_REC_EXEC, pid_tgid);
    r->old_pid = args->old_pid;
    r->pad = 0;
    unsigned short off = args->data_loc_filename & 0xFFFF;
    bpf_probe_read_kernel_str(r->filename, sizeof(r->filename), (char *)args + off);
    wb_ctrl.ringbuf_submit(r, 0);
    return 0;
}

static __always_inline void wb_emit_sigsys_denial(u64 pid_tgid, struct wb_sigsys *s, u32 action)
{
    struct wb_denial_rec *r = wb_ctrl.ringbuf_reserve(sizeof(*r));
    if (!r) {
        wb_count_lost(WB_LOST_CTRL);
        return;
    }
    wb_fill_head(&r->h, WB_REC_DENIAL, pid_tgid);
    r->h.ts = s->ts;
    bpf_probe_read_kernel(r->args, sizeof(r->args), s->args);
    r->ret = 0;
    r->nr = s->nr;
    r->action = action;
    r->blob_len[0] = s->blob_len[0];
    r->blob_len[1] = s->blob_len[1];
    r->arch = s->arch;
    bpf_probe_read_kernel(&r->b, sizeof(r->b), &s->b);
    wb_ctrl.ringbuf_submit(r, 0);
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tid = (u32)pid_tgid, tgid = pid_tgid >> 32;
    struct wb_config *c = wb_cfg();
    if (!c || c->mode == WB_MODE_OFF || !wb_in_sandbox(c, tgid)) {
        wb_sigsys.delete(&tid);
        return 0;
    }
    struct wb_sigsys *s = wb_sigsys.lookup(&tid);
    if (s) {                   /* SIGSYS, never delivered: killed on the spot (kill_thread) */
        wb_emit_sigsys_denial(pid_tgid, s, WB_DENY_KILL);
        struct wb_exit_info killed = {.exit_code = -1, .signal = WB_SIGSYS};
        wb_exit_info.update(&tgid, &killed);
        wb_sigsys.delete(&tid);
    }
    if (!args->group_dead)
        return 0;
    struct wb_exit_info *info = wb_exit_info.lookup(&tgid);
    if (c->gate_open) {
        struct wb_exit_rec *r = wb_ctrl.ringbuf_reserve(sizeof(*r));
        if (r) {
            wb_fill_head(&r->h, WB_REC_EXIT, pid_tgid);
            r->exit_code = info ? info->exit_code : -1;
            r->signal = info ? info->signal : 0;
            if (r->signal)
                r->exit_code = -1;
            wb_ctrl.ringbuf_submit(r, 0);
        } else {
            wb_count_lost(WB_LOST_CTRL);
        }
    }
    wb_exit_info.delete(&tgid);
    if (c->mode == WB_MODE_PIDS)
        wb_pids.delete(&tgid);
    return 0;
}

/* Delivery runs in the receiving task: the one place that knows its handler. */
TRACEPOINT_PROBE(signal, signal_deliver)
{
    int sig = args->sig;
    if (sig == WB_SIGSYS) {
        /* A seccomp SIGSYS pending for this thread: kill and trap actions both roll the call
         * back and raise SIGSYS, but only kill forces the default handler and marks the action
         * SA_IMMUTABLE so that nothing can catch it. */
        u32 tid = (u32)bpf_get_current_pid_tgid();
        struct wb_sigsys *s = wb_sigsys.lookup(&tid);
        if (s) {
            wb_emit_sigsys_denial(bpf_get_current_pid_tgid(), s,
                                  (args->sa_flags & WB_SA_IMMUTABLE) ? WB_DENY_KILL : WB_DENY_TRAP);
            wb_sigsys.delete(&tid);
        }
    }
    if (args->sa_handler != 0 || sig <= 0 || sig > 63 || !((WB_FATAL_BY_DEFAULT >> sig) & 1))
        return 0;
    struct wb_config *c = wb_cfg();
    if (!c || c->mode == WB_MODE_OFF)
        return 0;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32;
    if (!wb_in_sandbox(c, tgid))
        return 0;
    struct wb_exit_info info = {.exit_code = -1, .signal = sig};
    wb_exit_info.update(&tgid, &info);
    if (!c->gate_open)
        return 0;
    struct wb_signal_rec *r = wb_ctrl.ringbuf_reserve(sizeof(*r));
    if (!r) {
        wb_count_lost(WB_LOST_CTRL);
        return 0;
    }
    wb_fill_head(&r->h, WB_REC_SIGNAL, pid_tgid);
    r->sig = sig;
    r->code = args->code;
    wb_ctrl.ringbuf_submit(r, 0);
    return 0;
}

/* The part of a siginfo a seccomp SIGSYS fills (uapi layout, stable ABI: three ints, then the
 * union at offset 16 holding _sigsys: call address, syscall number, AUDIT_ARCH_*). */
struct wb_siginfo_sigsys {
    s32 signo;
    s32 err;
    s32 code;
    s32 pad;
    u64 call_addr;
    s32 syscall;
    u32 arch;
};

/* i386 arguments: ebx, ecx, edx, esi, edi, ebp (pt_regs from bp to di is contiguous). */
static __always_inline void wb_read_args_i386(struct pt_regs *regs, u64 args[6])
{
    struct { u64 bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di; } t = {};
    bpf_probe_read_kernel(&t, sizeof(t), &regs->bp);
    args[0] = (u32)t.bx;
    args[1] = (u32)t.cx;
    args[2] = (u32)t.dx;
    args[3] = (u32)t.si;
    args[4] = (u32)t.di;
    args[5] = (u32)t.bp;
}

/* Seccomp's kill and trap actions raise SIGSYS in the offending task, before the call is skipped.
 * Whether it was a trap or a kill is learnt next: a sys_exit (trap) or the task's exit (kill).
 * A raw tracepoint, for the siginfo: its syscall number and AUDIT_ARCH name the call whichever
 * ABI it came through (`int $0x80` numbers are i386's table, not x86-64's). */
int wb_signal_generate(struct bpf_raw_tracepoint_args *ctx)
{
    /* signal_generate(int sig, struct kernel_siginfo *info, struct task_struct *task, ...) */
    if ((int)ctx->args[0] != WB_SIGSYS || ctx->args[1] <= 1)   /* 0, 1: no siginfo */
        return 0;
    struct wb_siginfo_sigsys si = {};
    bpf_probe_read_kernel(&si, sizeof(si), (void *)ctx->args[1]);
    if (si.code != WB_SYS_SECCOMP || ctx->args[2] != bpf_get_current_task())
        return 0;              /* seccomp signals the caller itself */
    struct wb_config *c = wb_cfg();
    if (!c || c->mode == WB_MODE_OFF)
        return 0;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tid = (u32)pid_tgid;
    /* Before the gate opens only the gate task's execve counts (the app refused at birth). */
    if ((!c->gate_open && tid != c->gate_tid) || !wb_in_sandbox(c, pid_tgid >> 32))
        return 0;
    int zero = 0;
    /* Built in a per-cpu scratch slot (too big for the stack), then copied into the map. */
    struct wb_sigsys *s = wb_sigsys_scratch.lookup(&zero);
    if (!s)
        return 0;
    struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
    int native = si.arch == WB_AUDIT_ARCH_X86_64 && !(si.syscall & WB_X32_SYSCALL_BIT);
    s->ts = bpf_ktime_get_ns();
    s->nr = (u32)si.syscall;
    s->arch = si.arch;
    s->pad = 0;
    if (si.arch == WB_AUDIT_ARCH_I386)
        wb_read_args_i386(regs, s->args);
    else
        wb_read_args(regs, s->args);
    if (!c->gate_open) {
        if (!native || (s->nr != WB_NR_EXECVE && s->nr != WB_NR_EXECVEAT))
            return 0;
        c->gate_open = 1;
    }
    s->blob_len[0] = s->blob_len[1] = 0;
    if (native)                /* which arguments are paths: known for x86-64 numbers only */
        wb_read_blobs(s->nr, s->args, &s->b, s->blob_len);
    wb_sigsys.update(&tid, s);
    return 0;
}

TRACEPOINT_PROBE(oom, mark_victim)
{
    /* Rare. Raised in the allocating task's context: a sandboxed one means the sandbox's memory
     * ran out; otherwise user space keeps the victims it knows to be the sandbox's. */
    struct wb_config *c = wb_cfg();
    if (!c || c->mode == WB_MODE_OFF)
        return 0;
    struct wb_oom_rec *r = wb_ctrl.ringbuf_reserve(sizeof(*r));
    if (!r) {
        wb_count_lost(WB_LOST_CTRL);
        return 0;
    }
    u64 pid_tgid = bpf_get_current_pid_tgid();
    wb_fill_head(&r->h, WB_REC_OOM, pid_tgid);
    r->victim = args->pid;
    r->from_sandbox = wb_in_sandbox(c, pid_tgid >> 32);
    r->total_vm = args->total_vm;
    unsigned short off = args->data_loc_comm & 0xFFFF;
    bpf_probe_read_kernel_str(r->victim_comm, sizeof(r->victim_comm), (char *)args + off);
    wb_ctrl.ringbuf_submit(r, 0);
    return 0;
}
