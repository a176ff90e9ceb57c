/* A known workload for the backend tests (each mode makes an exact, odd number of calls):
 *   probe unsupported N   N fanotify_init(0, 0) calls (gVisor answers ENOSYS), exit 3 if the last failed
 *   probe sleep           print "up", then pause until killed
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "unsupported")) {
        long r = 0;
        for (int i = 0; i < atoi(argv[2]); i++)
            r = syscall(SYS_fanotify_init, 0, 0);
        return r == -1 && errno == ENOSYS ? 3 : 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "sleep")) {
        puts("up");
        fflush(stdout);
        for (;;)
            pause();
    }
    return 64;
}
