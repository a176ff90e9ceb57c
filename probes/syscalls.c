/* Syscalls: every syscall of every thread in the sandbox, from raw_syscalls tracepoints.
 *
 * sys_enter stamps the entry time; sys_exit counts the call in per-cpu aggregates (exact at any
 * rate) and, with WB_STREAM, writes one record to the wb_stream ring buffer. A sys_exit of a
 * thread we follow ("paired") with no pending entry is a call seccomp answered without running
 * it (seccomp runs before the sys_enter tracepoint): a denial.
 *
 * Where a thread's state lives, because helper calls are the cost here (each one a call and a
 * return through this kernel's mitigations, ~10-30 ns): in a per-CPU slot, owned by the task on
 * that CPU, found without a helper call and checked against the task's saved-register pointer
 * (unique per task, handed to both hooks). When a task is switched out, sched_switch moves its
 * state into task-local storage and frees the slot; the next task to make a syscall on that CPU
 * claims the slot and takes its state back (and its sandbox membership is checked then, once per
 * stay on the CPU, not per call). A syscall-bound app that keeps its CPU pays two clock reads and
 * a few loads per call.
 *
 * Raw tracepoints, because merely switching syscall tracing on is most of the cost and the raw
 * form is the cheapest (see docs/probes/syscalls.md). Arguments are read at sys_exit from the
 * saved user registers, which the syscall does not change (execve's are read at entry: its exit
 * runs in the new image).
 *
 * -D switches: WB_STREAM (per-event records), WB_STREAM_PAGES, WB_NR_* (from libseccomp).
 */
#include "wb_common.h"

#ifndef WB_STREAM_PAGES
#define WB_STREAM_PAGES 8192   /* 32 MiB with 4 KiB pages */
#endif

/* A followed thread's syscall state. */
struct wb_inflight {
    u64 ts;                    /* entry time; 0 when no call is pending */
    u32 nr;                    /* the pending call (saves reading orig_ax at exit) */
    u32 gen;                   /* wb_config.gen of the session that made it */
    u8 counted;                /* entered after the start gate opened */
    u8 paired;                 /* seen entering (or returning from fork): exits pair with entries */
    u8 pad[6];
};

/* The state of the task on this CPU, while it stays there. */
struct wb_oncpu {
    u64 regs;                  /* owner's saved user registers (its identity); 0: free */
    u64 pid_tgid;              /* the owner's */
    struct wb_inflight st;
    u32 moves;                 /* wb_config.moves when membership was last checked */
    u8 member;                 /* the owner is in the sandbox (checked when it claimed the slot) */
    u8 pad[3];
};

/* Task-local storage: where a task's state waits while it is off the CPU; freed with its task. */
BPF_TASK_STORAGE(wb_inflight, struct wb_inflight);
BPF_PERCPU_ARRAY(wb_oncpu, struct wb_oncpu, 1);
BPF_PERCPU_ARRAY(wb_sysrows, struct wb_sysrow, WB_MAX_NR);
BPF_PERCPU_HASH(wb_errors, u32, u64, 4096);            /* key: nr << 12 | errno */
BPF_HASH(wb_exit_info, u32, struct wb_exit_info, WB_MAX_TASKS);
BPF_HASH(wb_sigsys, u32, struct wb_sigsys, 1024);       /* by tid, see processes.c */
BPF_PERCPU_ARRAY(wb_scratch, struct wb_denial_rec, 1);
#ifdef WB_STREAM
BPF_RINGBUF_OUTPUT(wb_stream, WB_STREAM_PAGES);
BPF_PERCPU_ARRAY(wb_batches, struct wb_batch, 1);
#endif

static __always_inline u32 wb_log2(u64 v)
{
    u32 r = 0, s;
    s = (v > 0xFFFFFFFFULL) << 5; v >>= s; r |= s;
    s = (v > 0xFFFF) << 4; v >>= s; r |= s;
    s = (v > 0xFF) << 3; v >>= s; r |= s;
    s = (v > 0xF) << 2; v >>= s; r |= s;
    s = (v > 0x3) << 1; v >>= s; r |= s;
    r |= (v >> 1);
    return r;
}

static __always_inline void wb_aggregate(u32 nr, s64 ret, u64 dur)
{
    struct wb_sysrow *row = wb_sysrows.lookup(&nr);
    if (!row)
        return;
    row->count++;
    u32 slot = wb_log2(dur);
    if (slot >= WB_LAT_SLOTS)
        slot = WB_LAT_SLOTS - 1;
    row->lat[slot]++;
    if (ret < 0 && ret >= -4095) {
        u32 key = (nr << 12) | (u32)(-ret);
        u64 one = 1, *n = wb_errors.lookup(&key);
        if (n)
            (*n)++;
        else
            wb_errors.update(&key, &one);
    }
}

static __always_inline void wb_emit_argv(u64 pid_tgid, struct pt_regs *regs, u32 nr)
{
    struct wb_exec_argv_rec *r = wb_ctrl.ringbuf_reserve(sizeof(*r));
    if (!r) {
        wb_count_lost(WB_LOST_CTRL);
        return;
    }
    wb_fill_head(&r->h, WB_REC_EXEC_ARGV, pid_tgid);
    u64 args[6];
    wb_read_args(regs, args);
    /* execve(path, argv, envp); execveat(dirfd, path, argv, envp, flags) */
    int at = nr != WB_NR_EXECVE;
    const char *path = (const char *)(at ? args[1] : args[0]);
    const char *const *argv = (const char *const *)(at ? args[2] : args[1]);
    r->filename[0] = 0;
    bpf_probe_read_user_str(r->filename, sizeof(r->filename), path);
    r->argc = 0;
    r->truncated = 0;
#pragma unroll
    for (int i = 0; i < WB_ARGV_MAX; i++) {
        const char *arg = NULL;
        r->argv[i * WB_ARG_LEN] = 0;
        if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
            break;
        bpf_probe_read_user_str(&r->argv[i * WB_ARG_LEN], WB_ARG_LEN, arg);
        r->argc = i + 1;
    }
    if (r->argc == WB_ARGV_MAX) {
        const char *more = NULL;
        bpf_probe_read_user(&more, sizeof(more), &argv[WB_ARGV_MAX]);
        r->truncated = more != NULL;
    }
    wb_ctrl.ringbuf_submit(r, 0);
}

#ifdef WB_STREAM
static __always_inline void wb_fill_sys(struct wb_sys_rec *r, u64 pid_tgid, u32 nr, u64 ts, u64 dur,
                                        s64 ret, u64 args[6], u16 flags)
{
    r->ts = ts;
    r->dur = dur;
#pragma unroll
    for (int i = 0; i < 6; i++)
        r->args[i] = args[i];
    r->ret = ret;
    r->pid = pid_tgid >> 32;
    r->tid = (u32)pid_tgid;
    r->nr = nr;
    r->flags = flags;
    r->blob_len[0] = r->blob_len[1] = 0;
    r->pad = 0;
}

/* What waits in this CPU's batch, to the ring record by record, in order. */
static __always_inline void wb_flush(struct wb_batch *b)
{
    u32 n = b->n;
    if (n > WB_BATCH)
        n = WB_BATCH;
#pragma unroll
    for (int i = 0; i < WB_BATCH; i++) {
        if (i < n && wb_stream.ringbuf_output(&b->rec[i], sizeof(struct wb_sys_rec), BPF_RB_NO_WAKEUP))
            wb_count_lost(WB_LOST_STREAM);
    }
    b->n = 0;
}

static __always_inline void wb_stream_out(u64 pid_tgid, u32 nr, u64 ts, u64 dur, s64 ret,
                                          u64 args[6], u16 flags, struct wb_denial_rec *blobs)
{
    /* Never wake the reader: a wakeup per event would cost more than the event (it polls). */
    int zero = 0;
    struct wb_batch *b = wb_batches.lookup(&zero);
    if (!b) {
        wb_count_lost(WB_LOST_STREAM);
        return;
    }
    struct wb_argkind *k = wb_argkinds.lookup(&nr);
    b->busy = 1;
    barrier();
    if (!k || k->kind[0] == WB_ARG_NONE) {
        /* Most calls: into the batch; a full batch is one ring record. */
        u32 i = b->n;
        if (i >= WB_BATCH) {   /* cannot happen (a full batch leaves at once); stay in bounds */
            wb_flush(b);
            i = 0;
        }
        wb_fill_sys(&b->rec[i & (WB_BATCH - 1)], pid_tgid, nr, ts, dur, ret, args, flags);
        b->n = i + 1;
        if (i + 1 == WB_BATCH) {
            /* (Not `b->rec`: bcc's rewriter trips over an array member passed whole.) */
            struct wb_sys_rec *first = &b->rec[0];
            if (wb_stream.ringbuf_output(first, WB_BATCH * sizeof(struct wb_sys_rec), BPF_RB_NO_WAKEUP))
                wb_count_lost_n(WB_LOST_STREAM, WB_BATCH);
            b->n = 0;
        }
        barrier();
        b->busy = 0;
        return;
    }
    /* With decoded paths or addresses: too big for a batch, written in place after what waits. */
    if (b->n)
        wb_flush(b);
    barrier();
    b->busy = 0;
    struct wb_sys_path_rec *p = wb_stream.ringbuf_reserve(sizeof(struct wb_sys_path_rec));
    if (!p) {
        wb_count_lost(WB_LOST_STREAM);
        return;
    }
    struct wb_sys_rec *r = (struct wb_sys_rec *)p;
    wb_fill_sys(r, pid_tgid, nr, ts, dur, ret, args, flags);
    if (blobs) {               /* already decoded for the denial record */
        bpf_probe_read_kernel(&p->b, sizeof(p->b), &blobs->b);
        r->blob_len[0] = blobs->blob_len[0];
        r->blob_len[1] = blobs->blob_len[1];
    } else {
        wb_read_blobs(nr, args, &p->b, r->blob_len);
    }
    wb_stream.ringbuf_submit(p, BPF_RB_NO_WAKEUP);
}

/* Records must not wait long in a batch: a task that stops making syscalls without leaving its
 * CPU (a busy loop after the calls you want to see) would hold them back. On this CPU's next
 * timer interrupt (the scheduler tick, 250 Hz here), what waits goes out. */
int wb_tick(struct bpf_raw_tracepoint_args *ctx)
{
    int zero = 0;
    struct wb_batch *b = wb_batches.lookup(&zero);
    if (b && b->n && !b->busy)
        wb_flush(b);
    return 0;
}
#endif

/* The number of the call returning, from the saved orig_ax: for calls with no pending entry. */
static __always_inline u32 wb_nr_at_exit(struct pt_regs *regs)
{
    u64 nr = 0;
    bpf_probe_read_kernel(&nr, sizeof(nr), &regs->orig_ax);
    return (u32)nr;
}

/* The slot of this CPU for the task whose registers are at `regs`: its own already, or claimed
 * now (its state back from task storage, its membership checked). NULL when the task is not
 * followed. */
static __always_inline struct wb_oncpu *wb_claim(struct wb_config *c, u64 regs)
{
    int zero = 0;
    struct wb_oncpu *s = wb_oncpu.lookup(&zero);
    if (!s)
        return NULL;
    if (s->regs == regs && s->st.gen == c->gen) {
        if (s->moves != c->moves) {   /* a task changed cgroups somewhere: is ours still in? */
            s->moves = c->moves;
            s->member = wb_in_sandbox(c, s->pid_tgid >> 32);
        }
        return s->member ? s : NULL;
    }
    u64 pid_tgid = bpf_get_current_pid_tgid();
    s->moves = c->moves;
    s->regs = regs;
    s->pid_tgid = pid_tgid;
    s->st.gen = c->gen;
    s->st.ts = 0;
    s->st.paired = 0;
    s->st.counted = 0;
    s->member = wb_in_sandbox(c, pid_tgid >> 32);
    if (!s->member)
        return NULL;           /* remembered until the task leaves the CPU: its next calls cost nothing */
    struct wb_inflight *f = wb_inflight.task_storage_get(bpf_get_current_task_btf(), NULL, 0);
    if (f && f->gen == c->gen)
        s->st = *f;
    return s;
}

/* The task on this CPU is leaving it: keep its state with the task, free the slot. `current` is
 * still the task leaving. A valid slot is always its own: only it ran here since the last switch. */
int wb_sched_switch(struct bpf_raw_tracepoint_args *ctx)
{
    int zero = 0;
#ifdef WB_STREAM
    struct wb_batch *b = wb_batches.lookup(&zero);
    if (b && b->n && !b->busy)
        wb_flush(b);           /* a task leaving its CPU: what it did is out before it runs again */
#endif
    struct wb_oncpu *s = wb_oncpu.lookup(&zero);
    if (!s || !s->regs)
        return 0;
    s->regs = 0;
    if (!s->member)
        return 0;
    struct wb_config *c = wb_cfg();
    if (!c || c->mode == WB_MODE_OFF || s->st.gen != c->gen)
        return 0;
    struct wb_inflight *f = wb_inflight.task_storage_get(bpf_get_current_task_btf(), NULL,
                                                         BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (f)
        *f = s->st;
    return 0;
}

/* A task moved to another cgroup (any task, any hierarchy: rare): every slot checks its owner's
 * membership again at its next call. */
TRACEPOINT_PROBE(cgroup, cgroup_attach_task)
{
    struct wb_config *c = wb_cfg();
    if (c && c->mode == WB_MODE_CGROUP)
        __sync_fetch_and_add(&c->moves, 1);
    return 0;
}

int wb_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
    struct wb_config *c = wb_cfg();
    if (!c || c->mode == WB_MODE_OFF)
        return 0;
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    struct wb_oncpu *s = wb_claim(c, (u64)regs);
    if (!s)
        return 0;
    u64 pid_tgid = s->pid_tgid;
    u32 nr = (u32)ctx->args[1];
    u8 counted = c->gate_open;
    if (!counted && (u32)pid_tgid == c->gate_tid && nr == WB_NR_EXECVE) {
        c->gate_open = 1;      /* the app's first instruction is next: record from here on */
        counted = 1;
    }
    if (counted && (nr == WB_NR_EXECVE || nr == WB_NR_EXECVEAT))
        wb_emit_argv(pid_tgid, regs, nr);
    if (nr == WB_NR_EXIT || nr == WB_NR_EXIT_GROUP) {
        /* No sys_exit follows these: keep the status for sched_process_exit, count them here. */
        u32 tgid = pid_tgid >> 32;
        u64 status = 0;
        bpf_probe_read_kernel(&status, sizeof(status), &regs->di);
        struct wb_exit_info info = {.exit_code = (s32)(status & 0xff), .signal = 0};
        if (nr == WB_NR_EXIT_GROUP || (u32)pid_tgid == tgid)
            wb_exit_info.update(&tgid, &info);
        if (counted) {
            wb_aggregate(nr, 0, 0);
#ifdef WB_STREAM
            u64 args[6];
            wb_read_args(regs, args);
            wb_stream_out(pid_tgid, nr, bpf_ktime_get_ns(), 0, 0, args, 0, NULL);
#endif
        }
        return 0;
    }
    s->st.nr = nr;
    s->st.counted = counted;
    s->st.paired = 1;
    s->st.ts = bpf_ktime_get_ns();
    return 0;
}

int wb_sys_exit(struct bpf_raw_tracepoint_args *ctx)
{
    struct wb_config *c = wb_cfg();
    if (!c || c->mode == WB_MODE_OFF)
        return 0;
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    s64 ret = (s64)ctx->args[1];
    struct wb_oncpu *s = wb_claim(c, (u64)regs);
    if (!s)
        return 0;
    u64 pid_tgid = s->pid_tgid;
    u32 tid = (u32)pid_tgid;
    u32 nr;
    if (!s->st.paired) {
        /* A thread we never saw enter: either it was inside a syscall when we attached, or it
         * is a new task returning from fork. From now on its calls are paired. */
        if (ret != 0)
            return 0;
        nr = wb_nr_at_exit(regs);
        if (nr == WB_NR_CLONE || nr == WB_NR_CLONE3 || nr == WB_NR_FORK || nr == WB_NR_VFORK)
            s->st.paired = 1;
        return 0;
    }
    u64 now = bpf_ktime_get_ns();
    u64 ts = s->st.ts, dur = 0;
    u16 flags = 0;
    if (ts) {
        nr = s->st.nr;
        s->st.ts = 0;
        if (!s->st.counted)
            return 0;
        dur = now - ts;
        wb_aggregate(nr, ret, dur);
    } else {
        /* Paired thread, no pending entry: seccomp answered this call. */
        nr = wb_nr_at_exit(regs);
        if (!c->gate_open) {
            /* The app's execve itself refused: it never entered, so the gate opens here. */
            if (tid != c->gate_tid || (nr != WB_NR_EXECVE && nr != WB_NR_EXECVEAT))
                return 0;
            c->gate_open = 1;
        }
        ts = now;
        flags = 1;
        wb_aggregate(nr, ret, 0);
    }
    if (ret == 0 && (nr == WB_NR_EXECVE || nr == WB_NR_EXECVEAT))
        s->pid_tgid = bpf_get_current_pid_tgid();  /* a thread's exec takes its leader's pid */
    u64 args[6];
#ifndef WB_STREAM
    if (!flags)
        return 0;
#endif
    wb_read_args(regs, args);
    struct wb_denial_rec *d = NULL;
    if (flags) {
        int zero = 0;
        /* After a seccomp SIGSYS the denial is told at its delivery (processes.c), where kill and
         * trap differ; here only errno-like actions are. */
        d = wb_sigsys.lookup(&tid) ? NULL : wb_scratch.lookup(&zero);
        if (d) {
            d->action = WB_DENY_ERRNO;
            wb_fill_head(&d->h, WB_REC_DENIAL, pid_tgid);
#pragma unroll
            for (int i = 0; i < 6; i++)
                d->args[i] = args[i];
            d->ret = ret;
            d->nr = nr;
            d->arch = 0;
            wb_read_blobs(nr, args, &d->b, d->blob_len);
            if (wb_ctrl.ringbuf_output(d, sizeof(*d), 0))
                wb_count_lost(WB_LOST_CTRL);
        }
    }
#ifdef WB_STREAM
    wb_stream_out(pid_tgid, nr, ts, dur, ret, args, flags, d);
#endif
    return 0;
}
