/* Known workloads for the probe tests: each makes an exact, odd number of syscalls.
 *   workload getppid N          N getppid calls, then exit 0
 *   workload mkdir DIR N        N mkdir calls on DIR/d0..DIR/dN-1, then exit 0
 *   workload rmdir PATH         one rmdir (killed when seccomp says kill)
 *   workload tree CODE1 CODE2   fork two children that exit CODE1 and CODE2, wait them, exit 5
 *   workload execchild PATH ARG... fork, child execs PATH ARG..., parent waits and exits 0
 *   workload alloc MB           touch MB MiB of memory (for the OOM killer)
 *   workload connect PORT       connect a TCP socket to 127.0.0.1:PORT (refused is fine)
 *   workload threads T N        T threads make N getppid calls each, joined, exit 0
 *   workload movecg DIR N       move into a new v2 cgroup DIR, then N getppid calls, exit 0
 *   workload spin N S           on the last CPU: N getppid calls, then S seconds of a busy loop
 *                               without a syscall
 *   workload pingpong N         parent and child, both on CPU 0, hand a byte back and forth over
 *                               two pipes N times with a getppid each turn: every read blocks and
 *                               switches to the other (N getppid calls each), exit 0
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <pthread.h>
#include <sched.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *getppid_n(void *n)
{
    for (long i = 0; i < (long)n; i++)
        syscall(SYS_getppid);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "movecg")) {
        char path[4096], pid[32];
        if (mkdir(argv[2], 0755))
            return 3;
        snprintf(path, sizeof(path), "%s/cgroup.procs", argv[2]);
        FILE *f = fopen(path, "w");
        if (!f)
            return 4;
        snprintf(pid, sizeof(pid), "%d", getpid());
        fputs(pid, f);
        if (fclose(f))
            return 5;
        for (int i = 0, n = atoi(argv[3]); i < n; i++)
            syscall(SYS_getppid);
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "spin")) {
        struct timespec start, now;
        cpu_set_t last;
        CPU_ZERO(&last);
        CPU_SET(sysconf(_SC_NPROCESSORS_ONLN) - 1, &last);
        sched_setaffinity(0, sizeof(last), &last);  /* alone there, if the test keeps CPU 0 */
        for (int i = 0, n = atoi(argv[2]); i < n; i++)
            syscall(SYS_getppid);
        clock_gettime(CLOCK_MONOTONIC, &start);  /* the vDSO: no syscall */
        do
            clock_gettime(CLOCK_MONOTONIC, &now);
        while (now.tv_sec - start.tv_sec < atoi(argv[3]));
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "pingpong")) {
        int ping[2], pong[2];
        long n = atol(argv[2]);
        char byte = 'x';
        cpu_set_t cpu0;
        CPU_ZERO(&cpu0);
        CPU_SET(0, &cpu0);
        if (sched_setaffinity(0, sizeof(cpu0), &cpu0) || pipe(ping) || pipe(pong))
            return 3;
        pid_t child = fork();
        if (child < 0)
            return 4;
        int in = child ? pong[0] : ping[0], out = child ? ping[1] : pong[1];
        for (long i = 0; i < n; i++) {
            if (child && write(out, &byte, 1) != 1)
                return 5;
            if (read(in, &byte, 1) != 1)
                return 6;
            syscall(SYS_getppid);
            if (!child && write(out, &byte, 1) != 1)
                return 7;
        }
        if (!child)
            _exit(0);
        int status = 0;
        waitpid(child, &status, 0);
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 8;
    }
    if (argc >= 4 && !strcmp(argv[1], "threads")) {
        pthread_t t[64];
        int nt = atoi(argv[2]);
        long n = atol(argv[3]);
        for (int i = 0; i < nt && i < 64; i++)
            pthread_create(&t[i], NULL, getppid_n, (void *)n);
        for (int i = 0; i < nt && i < 64; i++)
            pthread_join(t[i], NULL);
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "getppid")) {
        int n = atoi(argv[2]);
        for (int i = 0; i < n; i++)
            syscall(SYS_getppid);
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "mkdir")) {
        int n = atoi(argv[3]);
        char path[4096];
        for (int i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "%s/d%d", argv[2], i);
            syscall(SYS_mkdir, path, 0755);
        }
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "rmdir")) {
        syscall(SYS_rmdir, argv[2]);
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "tree")) {
        for (int i = 0; i < 2; i++) {
            pid_t pid = fork();
            if (pid == 0)
                syscall(SYS_exit_group, atoi(argv[2 + i]));
        }
        while (wait(NULL) > 0)
            ;
        return 5;
    }
    if (argc >= 3 && !strcmp(argv[1], "execchild")) {
        pid_t pid = fork();
        if (pid == 0) {
            execv(argv[2], &argv[2]);
            _exit(127);
        }
        waitpid(pid, NULL, 0);
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "alloc")) {
        size_t mb = atoi(argv[2]);
        for (size_t i = 0; i < mb; i++) {
            char *p = malloc(1 << 20);
            if (!p)
                return 3;
            memset(p, 1, 1 << 20);
        }
        return 0;
    }
    if (argc >= 3 && !strcmp(argv[1], "connect")) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connect(fd, (struct sockaddr *)&sa, sizeof(sa));
        return 0;
    }
    fprintf(stderr, "usage: workload getppid|mkdir|rmdir|tree|execchild|alloc|connect ...\n");
    return 2;
}
