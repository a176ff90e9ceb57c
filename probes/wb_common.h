/* Maps and helpers every probe shares: the sandbox filter, the control ring buffer, lost counters.
 *
 * The filter lives in maps, not in -D constants, on purpose: it changes with every sandbox while
 * the programs do not, so one compiled and loaded object serves launch after launch (a bcc compile
 * costs most of a second). Sizes and feature switches that never change at run time are -D.
 */
#ifndef WB_COMMON_H
#define WB_COMMON_H

#include <linux/sched.h>
#include <asm/ptrace.h>
#include "wb_layout.h"

#ifndef WB_CTRL_PAGES
#define WB_CTRL_PAGES 256      /* control ring buffer: 1 MiB with 4 KiB pages */
#endif
#ifndef WB_MAX_TASKS
#define WB_MAX_TASKS 32768
#endif

BPF_ARRAY(wb_config, struct wb_config, 1);
BPF_HASH(wb_pids, u32, u8, WB_MAX_TASKS);              /* WB_MODE_PIDS membership, by tgid */
BPF_PERCPU_ARRAY(wb_lost, u64, 2);
BPF_RINGBUF_OUTPUT(wb_ctrl, WB_CTRL_PAGES);

/* Never read: their leaf types give user space the record layouts (see wb_layout.h). */
BPF_ARRAY(wb_layout_sys, struct wb_sys_rec, 1);
BPF_ARRAY(wb_layout_newtask, struct wb_newtask_rec, 1);
BPF_ARRAY(wb_layout_exec_argv, struct wb_exec_argv_rec, 1);
BPF_ARRAY(wb_layout_exec, struct wb_exec_rec, 1);
BPF_ARRAY(wb_layout_exit, struct wb_exit_rec, 1);
BPF_ARRAY(wb_layout_signal, struct wb_signal_rec, 1);
BPF_ARRAY(wb_layout_denial, struct wb_denial_rec, 1);
BPF_ARRAY(wb_layout_oom, struct wb_oom_rec, 1);

static __always_inline struct wb_config *wb_cfg(void)
{
    int zero = 0;
    return wb_config.lookup(&zero);
}

static __always_inline int wb_in_sandbox(struct wb_config *c, u32 tgid)
{
    if (c->mode == WB_MODE_CGROUP) {
        /* The sandbox's cgroup or any below it (an app may make its own), at the same cost. */
        if (c->cgroup_level != WB_LEVEL_EXACT)
            return bpf_get_current_ancestor_cgroup_id(c->cgroup_level) == c->cgroup_id;
        return bpf_get_current_cgroup_id() == c->cgroup_id;
    }
    if (c->mode == WB_MODE_PIDS)
        return wb_pids.lookup(&tgid) != NULL;
    return 0;
}

static __always_inline void wb_count_lost_n(int which, u64 count)
{
    u64 *n = wb_lost.lookup(&which);
    if (n)
        *n += count;
}

static __always_inline void wb_count_lost(int which)
{
    wb_count_lost_n(which, 1);
}

static __always_inline void wb_fill_head(struct wb_head *h, u32 kind, u64 pid_tgid)
{
    h->kind = kind;
    h->pid = pid_tgid >> 32;
    h->tid = (u32)pid_tgid;
    h->pad = 0;
    h->ts = bpf_ktime_get_ns();
    bpf_get_current_comm(&h->comm, sizeof(h->comm));
}

/* The six syscall argument registers (x86-64 ABI; pt_regs layout is stable ABI), in one read:
 * r10 r9 r8 ax cx dx si di orig_ax are contiguous, and one helper call costs less than six. */
struct wb_regs_tail {
    u64 r10, r9, r8, ax, cx, dx, si, di, orig_ax;
};

static __always_inline u64 wb_read_args(struct pt_regs *regs, u64 args[6])
{
    struct wb_regs_tail t = {};
    bpf_probe_read_kernel(&t, sizeof(t), &regs->r10);
    args[0] = t.di;
    args[1] = t.si;
    args[2] = t.dx;
    args[3] = t.r10;
    args[4] = t.r8;
    args[5] = t.r9;
    return t.orig_ax;
}

#endif

#ifndef WB_COMMON_BLOBS_H
#define WB_COMMON_BLOBS_H
/* Which arguments carry a path or an address, per syscall number: filled by the loader from
 * libseccomp names, so no syscall numbers are written here. */
BPF_ARRAY(wb_argkinds, struct wb_argkind, WB_MAX_NR);

static __always_inline u16 wb_read_blob(u8 kind, u8 idx, u64 args[6], char *dst)
{
    if (idx > 5)
        return 0;
    void *src = (void *)args[idx];
    if (kind == WB_ARG_STR) {
        long n = bpf_probe_read_user_str(dst, WB_PATH_LEN, src);
        return n > 0 ? (u16)n : 0;
    }
    if (kind == WB_ARG_SOCKADDR && idx < 5) {
        u64 len = args[idx + 1];
        if (len > WB_PATH_LEN - 1)
            len = WB_PATH_LEN - 1;
        len &= WB_PATH_LEN - 1;
        if (len && bpf_probe_read_user(dst, len, src) == 0)
            return (u16)len;
    }
    return 0;
}

/* Decodes up to two pointer arguments of syscall `nr` into `b`; returns 1 when any was read. */
static __always_inline int wb_read_blobs(u32 nr, u64 args[6], struct wb_blobs *b, u16 blob_len[2])
{
    blob_len[0] = blob_len[1] = 0;
    struct wb_argkind *k = wb_argkinds.lookup(&nr);
    if (!k || k->kind[0] == WB_ARG_NONE)
        return 0;
    blob_len[0] = wb_read_blob(k->kind[0], k->idx[0], args, &b->blob[0]);
    if (k->kind[1] != WB_ARG_NONE)
        blob_len[1] = wb_read_blob(k->kind[1], k->idx[1], args, &b->blob[WB_PATH_LEN]);
    return 1;
}
#endif
