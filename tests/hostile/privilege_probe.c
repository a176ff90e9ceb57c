/* Runs INSIDE a sandbox, installed setuid-root or with file capabilities by the test: shows what
 * the exec gave it. It creates the file named by argv[1] (the host checks its owner: host uid 0
 * would mean the setuid bit was honoured) and tries a raw socket (needs CAP_NET_RAW). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char line[256];
	FILE *status = fopen("/proc/self/status", "r");
	unsigned long long capeff = ~0ULL;
	int fd, raw;

	while (status && fgets(line, sizeof(line), status))
		if (strncmp(line, "CapEff:", 7) == 0)
			sscanf(line + 7, "%llx", &capeff);
	if (argc > 1) {
		fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0)
			close(fd);
	}
	raw = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	printf("euid=%d capeff=%llx setuid0=%d raw=%s\n", (int)geteuid(), capeff, setuid(0),
	       raw >= 0 ? "yes" : strerror(errno));
	return 0;
}
