"""Seccomp profiles from traces, round-tripped through real sandboxes: record a real program, generate
its allow-list (our TOML and Docker JSON), run it again under that profile: no denial, same exit,
same output. Also what-if and export over the same real recordings."""

from __future__ import annotations

import io
import json
import sqlite3
from contextlib import redirect_stdout

import pytest
from .scenario_helpers import run

from workbench.cli.main import main
from workbench.sandbox.seccomp_json import load_docker
from workbench.sandbox.profile import apply_overrides, from_dict, load

pytestmark = pytest.mark.privileged
PY = "/usr/bin/python3"
NET_APP = """
import socket
gw = None
for line in open('/proc/net/route').read().splitlines()[1:]:
    f = line.split()
    if f[1] == '00000000':
        gw = socket.inet_ntoa(bytes.fromhex(f[2])[::-1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((gw, 9))
s.send(b'x' * 23)
print('sent', len(s.getsockname()))
"""
PROGRAMS = {
    "pipeline": (None, ["sh", "-c", "seq 23 | sort -rn | head -n 3"]),
    "python": (None, [PY, "-c", "import json, os; print(json.dumps({'n': 23, 'cwd': os.getcwd()}))"]),
    "network": ("veth", [PY, "-c", NET_APP]),
}


def cli(*argv) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        status = main(list(argv))
    return status, out.getvalue()


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_generated_profiles_run_the_same_program_without_denials(tmp_path, name):
    net, command = PROGRAMS[name]
    base = apply_overrides(load("default"), net=net) if net else load("default")
    rec = str(tmp_path / "run.sqlite")
    first = run(base, command, record=rec)
    assert first.ok and not first.denials, (first.stderr, first.denials)

    status, _ = cli("profile", rec, "--format", "toml", "-o", str(tmp_path / "traced.toml"))
    assert status == 0
    traced = load(str(tmp_path / "traced.toml"))
    assert traced.seccomp.mode == "allow" and "execve" in traced.seccomp.syscalls
    again = run(traced, command)
    assert again.ok and not again.denials, (again.stderr, again.denials)
    assert again.stdout == first.stdout

    status, _ = cli("profile", rec, "--format", "docker", "-o", str(tmp_path / "traced.json"))
    assert status == 0
    data = json.loads((tmp_path / "traced.json").read_text())
    assert data["defaultAction"] == "SCMP_ACT_ERRNO"
    imported = base.to_dict()
    from workbench.diagnose.fixes import to_file_shape

    shaped = to_file_shape(imported)
    shaped["seccomp"] = load_docker(str(tmp_path / "traced.json"))
    under_docker = run(from_dict(shaped, "imported"), command)
    assert under_docker.ok and not under_docker.denials and under_docker.stdout == first.stdout


def test_whatif_and_export_over_a_real_recording(tmp_path):
    rec = str(tmp_path / "run.sqlite")
    outcome = run(load("default"), ["sh", "-c", "for i in $(seq 23); do echo $i; done > /dev/null; echo end"],
                  record=rec)
    assert outcome.ok
    db = sqlite3.connect(rec)
    writes = db.execute("SELECT count(*) FROM syscalls WHERE name = 'write'").fetchone()[0]
    total_calls = db.execute("SELECT count(*) FROM syscalls").fetchone()[0]
    db.close()
    assert writes >= 24

    deny_write = tmp_path / "deny-write.toml"
    deny_write.write_text('[seccomp]\nmode = "deny"\nsyscalls = ["write"]\n')
    status, text = cli("whatif", rec, "--profile", str(deny_write))
    assert status == 0
    rows = [line.split() for line in text.splitlines() if line.startswith("  ") and "also:" not in line]
    assert rows == [["write", str(writes), "errno", "EPERM", "seccomp.syscalls", "(deny-list)", "lists", "write"]]

    status, text = cli("export", rec, "--format", "jsonl")
    assert status == 0
    lines = [json.loads(line) for line in text.splitlines()]
    assert sum(1 for x in lines if x["type"] == "Syscall") == total_calls
    assert any(x["type"] == "SandboxExited" and x["exit_code"] == 0 for x in lines)

    status, text = cli("export", rec, "--format", "chrome-trace")
    assert status == 0
    trace = json.loads(text)["traceEvents"]
    slices = [e for e in trace if e.get("cat") == "syscall"]
    assert len(slices) == total_calls and {e["ph"] for e in slices} == {"X"}  # nothing was denied
    assert {e["name"] for e in trace if e.get("ph") == "M"} == {"process_name"}

    status, text = cli("explain", rec)
    assert status == 0 and "exit 0" in text.splitlines()[0]


def test_bad_recordings_are_one_line_errors_with_status_2(tmp_path, capsys):
    foreign = tmp_path / "notes.txt"
    foreign.write_text("not a recording\n")
    for argv in (["explain", str(foreign)], ["profile", str(tmp_path / "missing.sqlite")],
                 ["export", str(foreign), "--format", "jsonl"], ["whatif", str(foreign), "--profile", "strict"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("workbench: "), err


def test_a_gvisor_recording_profiles_the_apps_syscalls_not_the_sentrys(tmp_path):
    rec = str(tmp_path / "gvisor.sqlite")
    outcome = run(load("default"), ["sh", "-c", "echo 23"], record=rec, backend="gvisor")
    assert outcome.ok and outcome.stdout == b"23\n"
    db = sqlite3.connect(rec)
    app = {r[0] for r in db.execute("SELECT DISTINCT name FROM syscalls WHERE source = 'gvisor'")}
    sentry_only = {r[0] for r in db.execute("SELECT DISTINCT name FROM syscalls WHERE source = 'host'")} - app
    db.close()
    assert app and sentry_only  # both views were recorded
    status, text = cli("profile", rec, "--format", "oci")
    assert status == 0
    names = set(json.loads(text)["syscalls"][0]["names"])
    assert names == {n for n in app if not n.startswith("sys_")} | {"execve", "exit_group"}
