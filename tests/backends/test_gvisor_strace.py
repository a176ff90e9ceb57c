"""The gVisor strace parser on lines copied from a real runsc boot log (pure unit tests)."""

from __future__ import annotations

from workbench.core.events import Notice, Syscall
from workbench.sandbox.gvisor_strace import Clock, StraceParser, split_args

CLOCK = Clock(year=2026, offset_ns=0)
ACCESS = ("I1204 20:08:57.429790   12024 strace.go:602] [   1:   1] sh X access(0x7ffa43d112a0 "
          "/etc/ld.so.preload, 0o4) = 0 (0x0) errno=2 (no such file or directory) (132.339µs)")
OPENAT = ("I1204 20:08:57.430708   12024 strace.go:608] [   1:   1] sh X openat(AT_FDCWD /tmp, 0x7ffa43ce2140 "
          "/lib/x86_64-linux-gnu/libc.so.6, O_RDONLY|O_CLOEXEC, 0o0) = 3 (0x3) (91.718µs)")
WAIT = ("I1204 20:08:57.486809   12024 strace.go:608] [   1:   1] sh X wait4(0xffffffff, 0x7fc083a3027c, 0x0, "
        "0x0) = 0 (0x0) errno=512 (to be restarted if SA_RESTART is set) (43.353227ms)")
ENTRY = "I1204 20:08:57.427067   12024 strace.go:561] [   1:   1] sh E brk(0x0)"
RSEQ = ("I1204 20:08:57.432734   12024 compat.go:123] Unsupported syscall rseq(0x7ffa43af5060,0x20,0x0,"
        "0x53053053,0x0,0x0). It is likely that you can safely ignore this message.")
FANOTIFY = ("I1204 20:24:28.959620   20764 compat.go:123] Unsupported syscall fanotify_init(0x0,0x0,0x559c97dbccc0,"
            "0x7fcd7cdb7b30,0x559c97dbd770,0x6). It is likely that you can safely ignore this message.")


def test_exit_line_with_errno():
    sc = StraceParser(CLOCK).parse(ACCESS)
    assert isinstance(sc, Syscall)
    assert (sc.pid, sc.tid, sc.comm, sc.name, sc.nr) == (1, 1, "sh", "access", 21)
    assert (sc.ret, sc.errno, sc.duration_ns) == (-2, "ENOENT", 132_339)
    assert sc.args == (0x7FFA43D112A0, 4, 0, 0, 0, 0)
    assert sc.decoded["pathname"] == "/etc/ld.so.preload"
    assert sc.source == "gvisor"


def test_exit_line_with_a_result_and_the_entry_time():
    sc = StraceParser(CLOCK).parse(OPENAT)
    assert (sc.ret, sc.errno, sc.args[0]) == (3, None, -100)
    assert sc.decoded["pathname"] == "/lib/x86_64-linux-gnu/libc.so.6"
    exit_ns = CLOCK.monotonic_ns(12, 4, 20, 8, 57, 430708)
    assert sc.ts_ns == exit_ns - 91_718


def test_restart_codes_are_named_and_entries_ignored():
    p = StraceParser(CLOCK)
    sc = p.parse(WAIT)
    assert (sc.errno, sc.duration_ns) == ("ERESTARTSYS", 43_353_227)
    assert p.parse(ENTRY) is None
    assert p.parse("garbage") is None and p.skipped == 0


def test_unsupported_syscalls_become_one_notice_each_and_libc_fallbacks_stay_quiet():
    p = StraceParser(CLOCK)
    rseq = p.parse(RSEQ)
    assert isinstance(rseq, Notice) and rseq.level == "info" and "unsupported" not in rseq.text.lower()
    fan = p.parse(FANOTIFY)
    assert isinstance(fan, Notice) and fan.level == "warning" and fan.source == "gvisor"
    assert "unsupported syscall fanotify_init" in fan.text
    assert p.parse(FANOTIFY) is None


def test_split_args_minds_quotes_and_brackets():
    text = '0x3 /f, 0x7f "a, \\"b\\" (c", 0x1 {dev=1, ino=2}, ["x", "y"]'
    assert split_args(text) == ["0x3 /f", '0x7f "a, \\"b\\" (c"', "0x1 {dev=1, ino=2}", '["x", "y"]']
