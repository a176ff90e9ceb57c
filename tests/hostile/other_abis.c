/* Runs INSIDE a sandbox: calls sethostname through the other syscall ABIs of an x86-64 kernel, the
 * classic way around a filter written for one architecture: the i386 ABI (int $0x80, where
 * sethostname is 74) when argv[1] is "i386", the x32 ABI (bit 30 set) when it is "x32".
 * Prints what the call returned, if the process survives it. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	static const char name[] = "evil";
	long ret;

	if (argc > 1 && strcmp(argv[1], "i386") == 0)
		__asm__ volatile ("int $0x80" : "=a"(ret) : "a"(74), "b"(name), "c"(4) : "memory");
	else
		__asm__ volatile ("syscall" : "=a"(ret) : "a"(0x40000000L | 170), "D"(name), "S"(4L)
				  : "rcx", "r11", "memory");
	printf("returned %ld\n", ret);
	return 0;
}
