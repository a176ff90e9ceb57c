/* The kernel/user contract: every record the probes hand to user space, declared once.
 *
 * User space never restates these layouts: the loader asks bcc for the ctypes twin of each struct
 * (they are the leaf types of the `wb_layout_*` arrays below) and derives its decoders from it.
 * Sizes are configured by -D cflags from workbench/tracing/loader.py; the defaults here only keep
 * the file compilable on its own.
 */
#ifndef WB_LAYOUT_H
#define WB_LAYOUT_H

#ifndef WB_PATH_LEN
#define WB_PATH_LEN 256        /* bytes kept of a path or socket address argument (power of 2) */
#endif
#ifndef WB_ARGV_MAX
#define WB_ARGV_MAX 16         /* execve arguments kept */
#endif
#ifndef WB_ARG_LEN
#define WB_ARG_LEN 128         /* bytes kept of each execve argument (power of 2) */
#endif
#ifndef WB_MAX_NR
#define WB_MAX_NR 512          /* syscall numbers counted in the aggregate arrays */
#endif
#ifndef WB_LAT_SLOTS
#define WB_LAT_SLOTS 40        /* log2 latency slots: [2^i, 2^(i+1)) ns, the last one open-ended */
#endif

/* wb_config.mode */
#define WB_MODE_OFF 0          /* match nothing: loaded but between sandboxes */
#define WB_MODE_CGROUP 1       /* match tasks whose v2 cgroup id is cgroup_id */
#define WB_MODE_PIDS 2         /* match tgids in wb_pids (followed through forks) */
#define WB_LEVEL_EXACT 0xFFFFFFFF /* depth unknown: match the cgroup itself, not its children */

/* Where an argument points, per syscall number (wb_argkinds): decoded at sys_exit. */
#define WB_ARG_NONE 0
#define WB_ARG_STR 1           /* a NUL-terminated user string (path) */
#define WB_ARG_SOCKADDR 2      /* a struct sockaddr *, its length in the next argument */

/* Control record kinds (wb_ctrl ring buffer). */
#define WB_REC_NEWTASK 1
#define WB_REC_EXEC_ARGV 2
#define WB_REC_EXEC 3
#define WB_REC_EXIT 4
#define WB_REC_SIGNAL 5
#define WB_REC_DENIAL 6
#define WB_REC_OOM 7

/* wb_denial_rec.action */
#define WB_DENY_ERRNO 1        /* sys_exit without sys_enter: errno (or trace) action */
#define WB_DENY_TRAP 2         /* SIGSYS, then the skipped call returned */
#define WB_DENY_KILL 3         /* SIGSYS, then the task died */

/* Lost-record counters (wb_lost). */
#define WB_LOST_STREAM 0
#define WB_LOST_CTRL 1

struct wb_config {
    __u64 cgroup_id;
    __u32 mode;
    __u32 gate_tid;            /* drop events until this task's execve enter */
    __u32 gate_open;
    __u32 gen;                 /* session number: per-task state of earlier sessions is stale */
    __u32 cgroup_level;        /* depth of cgroup_id in the v2 tree, or WB_LEVEL_EXACT */
    __u32 moves;               /* cgroup migrations seen (any task): membership checks go stale */
};

struct wb_argkind {
    __u8 kind[2];
    __u8 idx[2];               /* which of the six arguments */
};

/* Per syscall number, per cpu: exact whatever the stream drops. */
struct wb_sysrow {
    __u64 count;
    __u64 lat[WB_LAT_SLOTS];
};

/* One syscall in the stream ring buffer. `blob_len` is 0 when no argument was decoded; records
 * with decoded arguments are followed by wb_blobs (the reader tells them apart by length). */
struct wb_sys_rec {
    __u64 ts;                  /* entry, CLOCK_MONOTONIC ns (exit when denied) */
    __u64 dur;
    __u64 args[6];
    __s64 ret;
    __u32 pid;
    __u32 tid;
    __u32 nr;
    __u16 flags;               /* bit 0: denied (no sys_enter seen) */
    __u16 blob_len[2];
    __u16 pad;
};

/* Plain records (no decoded arguments) wait in a per-CPU batch and go to the ring WB_BATCH at a
 * time, one ring record of WB_BATCH wb_sys_recs: one ring-buffer reservation per batch instead of
 * per call. A batch is also flushed (record by record) before a record with decoded arguments,
 * when its CPU switches tasks, on a timer tick, and read by user space after detaching. */
#define WB_BATCH 16

struct wb_batch {
    __u32 n;                   /* records waiting in rec[] */
    __u32 busy;                /* a syscall hook is writing: the tick leaves the batch alone */
    struct wb_sys_rec rec[WB_BATCH];
};

struct wb_blobs {
    char blob[2 * WB_PATH_LEN];   /* flat: bcc's ctypes twin cannot express 2-D arrays */
};

struct wb_sys_path_rec {
    struct wb_sys_rec sys;
    struct wb_blobs b;
};

/* Common head of every control record. */
struct wb_head {
    __u32 kind;
    __u32 pid;                 /* tgid of the task the record is about */
    __u32 tid;
    __u32 pad;
    __u64 ts;
    char comm[16];
};

struct wb_newtask_rec {
    struct wb_head h;          /* h.pid/h.tid: the parent */
    __u64 clone_flags;
    __u32 child;               /* the new task's tid (its pid when not CLONE_THREAD) */
    __u32 pad;
};

struct wb_exec_argv_rec {
    struct wb_head h;
    __u32 argc;                /* arguments kept (at most WB_ARGV_MAX) */
    __u32 truncated;           /* more arguments existed */
    char filename[WB_PATH_LEN];
    char argv[WB_ARGV_MAX * WB_ARG_LEN];  /* argument i at i * WB_ARG_LEN */
};

struct wb_exec_rec {
    struct wb_head h;
    __u32 old_pid;
    __u32 pad;
    char filename[WB_PATH_LEN];
};

struct wb_exit_rec {
    struct wb_head h;
    __s32 exit_code;           /* -1 when unknown */
    __s32 signal;              /* 0 when none */
};

struct wb_signal_rec {
    struct wb_head h;
    __s32 sig;
    __s32 code;
};

struct wb_denial_rec {
    struct wb_head h;
    __u64 args[6];
    __s64 ret;
    __u32 nr;
    __u32 action;
    __u16 blob_len[2];
    __u32 arch;                /* AUDIT_ARCH_* of the call's ABI (from SIGSYS's siginfo); 0: x86-64 */
    struct wb_blobs b;
};

struct wb_oom_rec {
    struct wb_head h;
    __u32 victim;
    __u32 from_sandbox;        /* raised by a sandboxed task (its memory cgroup ran out) */
    __u64 total_vm;
    char victim_comm[16];
};

/* Exit status being built for a tgid: from exit_group's argument or a fatal signal. */
struct wb_exit_info {
    __s32 exit_code;
    __s32 signal;
};

/* A SIGSYS from seccomp waiting to learn whether the task survives it (trap) or not (kill). */
struct wb_sigsys {
    __u64 ts;
    __u64 args[6];
    __u32 nr;                  /* as the filter saw it: the ABI's own number (x32: with bit 30) */
    __u16 blob_len[2];
    __u32 arch;                /* AUDIT_ARCH_* */
    __u32 pad;
    struct wb_blobs b;
};

#endif
