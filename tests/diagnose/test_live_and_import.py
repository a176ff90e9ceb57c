"""The live diagnoser on a bus, the Docker/OCI seccomp importer, fixes as profile data, and the
floors (record and diagnose import only workbench.core). Pure unit tests, except the importer's
result going through the real profile validator."""

from __future__ import annotations

from tests.conftest import wait_until
import json
import subprocess
import sys

from workbench.core import events as ev
from workbench.core.bus import Bus
from workbench.diagnose import LiveDiagnoser, apply_fix, to_toml
from workbench.sandbox.seccomp_json import load_docker
from workbench.diagnose.traced_profile import traced_profile, whatif
from workbench.sandbox.profile import apply_overrides, from_dict, load

T0 = 7_000_000_000


def denial(i: int, name: str = "mkdir") -> ev.Syscall:
    return ev.Syscall(ts_ns=T0 + i, pid=23, tid=23, comm="app", nr=83, name=name, args=(0,) * 6, ret=-1,
                      errno="EPERM", duration_ns=0, decoded={"pathname": f"/tmp/{i}"}, denied=True)


def test_live_diagnoser_publishes_findings_as_evidence_arrives_and_at_exit():
    bus = Bus()
    findings: list[ev.Finding] = []
    bus.subscribe(findings.append, ev.Finding)
    p = apply_overrides(load("default"), deny=["mkdir", "rmdir"])
    live = LiveDiagnoser(bus, p.to_dict())
    bus.publish(ev.SandboxReleased(ts_ns=T0, pid=23))
    bus.publish(ev.SyscallBatch(ts_ns=T0 + 1, syscalls=tuple(denial(i) for i in range(5))))
    wait_until(lambda: findings, 10, "the diagnoser's thread to publish")
    assert [f.rule for f in findings] == ["seccomp-denial:mkdir"]  # before the exit: live
    bus.publish(ev.SyscallBatch(ts_ns=T0 + 9, syscalls=(denial(9, "rmdir"),)))
    bus.publish(ev.SandboxExited(ts_ns=T0 + 10, exit_code=1, signal=None, duration_s=0.1))
    final = live.finish()
    assert [f.rule for f in final][:2] == ["seccomp-denial:rmdir", "seccomp-denial:mkdir"]
    latest = {f.rule: f for f in findings}  # republished as evidence grew and the exit came
    assert sorted(latest) == ["seccomp-denial:mkdir", "seccomp-denial:rmdir"]
    assert sorted(latest.values(), key=lambda f: -f.score) == final
    assert len(final[1].evidence) == 5
    published = len(findings)
    assert live.finish() == final and len(findings) == published  # idempotent


def test_docker_profile_import(tmp_path):
    docker = {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "syscalls": [
            {"names": ["read", "write", "exit_group", "execve", "not_a_syscall_23"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["arm_fadvise64_64"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm"]}},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        ],
    }
    path = tmp_path / "docker.json"
    path.write_text(json.dumps(docker))
    table = load_docker(str(path))
    assert table["mode"] == "allow" and table["errno"] == "EPERM"
    assert table["syscalls"] == ["read", "write", "exit_group", "execve", "clone", "clone3"]
    profile = from_dict({"seccomp": table}, "imported")
    assert profile.seccomp.syscalls == table["syscalls"]

    oci = {"ociVersion": "1.0.2", "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["ptrace", "bpf"], "action": "SCMP_ACT_KILL_PROCESS"}]}}}
    path.write_text(json.dumps(oci))
    table = load_docker(str(path))
    assert (table["mode"], table["action"], table["syscalls"]) == ("deny", "kill", ["ptrace", "bpf"])


def test_docker_import_errors_are_one_line(tmp_path):
    path = tmp_path / "bad.json"
    for text, words in (("{", "not valid JSON"), ('{"syscalls": []}', "no defaultAction")):
        path.write_text(text)
        try:
            load_docker(str(path))
        except Exception as exc:  # ProfileError: exit status 2 in the CLI
            assert words in str(exc) and "\n" not in str(exc) and getattr(exc, "exit_status", 0) == 2
        else:
            raise AssertionError("accepted a bad file")


def test_traced_toml_is_a_valid_profile_and_whatif_counts():
    counts = {"read": 23, "write": 7, "openat": 3, "mkdir": 1}
    base = load("default").to_dict()
    import tomllib

    data = tomllib.loads(traced_profile(counts, base, "toml", "run.sqlite"))
    p = from_dict(data, "traced.toml")
    assert p.seccomp.mode == "allow"
    assert p.seccomp.syscalls == ["execve", "exit_group", "mkdir", "openat", "read", "write"]
    assert p.memory == load("default").memory and p.net == "none"
    verdicts, notes = whatif(counts, load("strict").to_dict(), peaks={"memory": 300 << 20, "pids": 3})
    assert verdicts == []  # strict allows all four
    assert notes and "cgroup-memory" in notes[0]
    verdicts, _ = whatif(counts, apply_overrides(load("default"), deny=["write"]).to_dict())
    assert [(v.syscall, v.count) for v in verdicts] == [("write", 7)]


def test_apply_fix_and_toml_round_trip():
    p = apply_overrides(load("default"), binds=["/etc:/tmp/etc"], memory="64M")
    patch = ev.Finding(ts_ns=0, layer="cgroup-memory", summary="", fix_profile={"limits": {"memory": "128M"}})
    fixed = from_dict(apply_fix(p.to_dict(), patch), "fixed")
    assert fixed.memory == 128 << 20 and [(b.src, b.dst) for b in fixed.binds] == [("/etc", "/tmp/etc")]
    import tomllib

    again = from_dict(tomllib.loads(to_toml(apply_fix(p.to_dict(), patch))), "again")
    assert again.to_dict() == {**fixed.to_dict(), "name": again.name}


def test_record_and_diagnose_import_only_core():
    code = ("import sys, workbench.record, workbench.record.replay, workbench.record.export, workbench.diagnose, "
            "workbench.diagnose.seccomp_json, workbench.diagnose.traced_profile\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich') or "
            "m.startswith(('workbench.sandbox', 'workbench.tracing', 'workbench.session', 'workbench.tui', "
            "'workbench.cli'))]\nprint(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
