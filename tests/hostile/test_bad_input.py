"""Bad input, property-based: random profiles (TOML text and parsed tables with wrong types, huge
values, unknown syscalls), random CLI options, truncated and corrupted recordings, random Docker
seccomp JSON. Always either accepted or one line naming the mistake with a documented exit
status: never a traceback, never a hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.core.errors import ProfileError, RecordingError, UsageError, WorkbenchError
from workbench.sandbox import profile as prof

from .conftest import REPO, run_sandbox

pytestmark = pytest.mark.privileged

WORKBENCH = str(REPO / ".venv" / "bin" / "workbench")
# Bounded for CI; derandomized so a run finds the same things every time (and writes no example
# database outside tmp_path).
_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
BOUNDED = settings(max_examples=75, deadline=None, derandomize=True, database=None, suppress_health_check=_HEALTH)
FEW = settings(max_examples=23, deadline=None, derandomize=True, database=None, suppress_health_check=_HEALTH)

# Values a hurried profile author (or a fuzzer) writes: wrong types, huge and negative numbers,
# near-miss names, paths, sizes.
WORDS = ["512M", "1G", "1.5GiB", "0", "-1", "99999999999T", "abc", "EPERM", "EFOO", "mkdir", "mkdri", "read",
         "/", "/tmp", "/tmp/x:/tmp/y:rw", "a:b:c:d", "rw", "ro", "none", "loopback", "veth", "host", "deny",
         "allow", "off", "kill", "trap", "log", "errno", "net_raw", "cap_sys_admin", "sys_adminn", "", " ",
         "\x00", "é", "🙂"]
SCALARS = st.one_of(st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
                    st.integers(min_value=-(10**30), max_value=10**30),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(WORDS), st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) |
                      st.dictionaries(st.sampled_from(WORDS) | st.text(max_size=6), inner, max_size=3),
                      max_leaves=8)
SCHEMA = {
    "process": ["hostname", "cwd", "env", "pass_env", "init"],
    "user": ["uid", "gid", "host_uid", "host_gid"],
    "namespaces": list(prof.NAMESPACE_TYPES),
    "filesystem": ["rootfs", "readonly_root", "tmp_size", "binds"],
    "network": ["mode"],
    "capabilities": ["keep", "no_new_privs"],
    "limits": ["memory", "pids", "cpus"],
    "rlimits": list(prof.RLIMITS),
    "seccomp": ["mode", "action", "errno", "syscalls", "log", "deny_clone_newuser"],
}


def section(name: str):
    keys = st.sampled_from(SCHEMA[name] + ["unknown_key"])
    return st.dictionaries(keys, VALUES, max_size=4) | VALUES


PROFILES = st.fixed_dictionaries({}, optional={
    **{name: section(name) for name in SCHEMA},
    "name": VALUES, "description": VALUES, "bogus": VALUES})


def one_line(message: str) -> None:
    assert message and "\n" not in message.strip() and "Traceback" not in message


@BOUNDED
@given(data=PROFILES)
def test_any_profile_table_validates_or_names_its_mistake(data):
    try:
        p = prof.from_dict(data, "fuzz.toml")
    except ProfileError as exc:
        one_line(str(exc))
        assert str(exc).startswith("fuzz.toml")
        return
    # Accepted: it must also turn into a launch plan and a seccomp filter without surprises.
    from workbench.sandbox import security
    from workbench.sandbox.plan import make_plan

    try:
        make_plan(p, ["true"])
    except WorkbenchError as exc:
        one_line(str(exc))
        return
    security.build_filter(p.to_dict()["seccomp"])


@BOUNDED
@given(text=st.text(max_size=300) | st.sampled_from([
    "[seccomp]\nsyscalls = [1, 2]", "[limits]\nmemory = 1e400", "[limits]\npids = 99999999999999999999",
    "name = 'x'\nname = 'y'", "[process\n", "[[seccomp]]\nmode='deny'", "seccomp = 3", "\x00", "[user]\nuid = -1",
    "[filesystem]\nbinds = [{src='/tmp', dst='relative'}]", "[seccomp]\nsyscalls = ['mkdri']"]))
def test_any_profile_file_loads_or_names_its_mistake(tmp_path, text):
    path = tmp_path / "fuzz.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        prof.load(str(path))
    except ProfileError as exc:
        one_line(str(exc))


OPTION_VALUES = st.sampled_from(WORDS) | st.text(max_size=10)


@BOUNDED
@given(memory=st.none() | OPTION_VALUES, pids=st.none() | OPTION_VALUES, cpus=st.none() | OPTION_VALUES,
       net=st.none() | OPTION_VALUES, deny=st.lists(OPTION_VALUES, max_size=3),
       allow=st.lists(OPTION_VALUES, max_size=3), binds=st.lists(OPTION_VALUES, max_size=2),
       rootfs=st.none() | OPTION_VALUES)
def test_any_cli_override_applies_or_names_its_mistake(memory, pids, cpus, net, deny, allow, binds, rootfs):
    try:
        prof.apply_overrides(prof.load("default"), memory=memory, pids=pids, cpus=cpus, net=net, deny=deny,
                             allow=allow, binds=binds, rootfs=rootfs)
    except UsageError as exc:
        one_line(str(exc))


CLI_OPTIONS = st.lists(st.tuples(
    st.sampled_from(["--profile", "--backend", "--memory", "--pids", "--cpus", "--net", "--deny", "--allow",
                     "--bind", "--rootfs", "--no-such-option", "--aggregate-only", "-x"]),
    st.sampled_from(WORDS + ["default", "strict", "permissive", "/nonexistent.toml", "native", "bwrap", "gvisor"])
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)),
    max_size=4)


@FEW
@given(options=CLI_OPTIONS)
def test_any_cli_line_is_refused_in_one_line_or_runs(options, capfd):
    """The real `workbench run` (in this process, as the entry point calls it): a usage or profile
    mistake is exit 2 with one line; anything accepted runs a missing command (127)."""
    from workbench.cli.main import main

    argv = ["run", "--no-trace", "--quiet"] + [x for pair in options for x in pair] + ["--", "no-such-command-23"]
    capfd.readouterr()
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own refusal
        status = exc.code
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert status in (2, 125, 127), (argv, status, err)
    if status in (2, 125):
        one_line(err)
        assert err.startswith("workbench: ")


@pytest.mark.parametrize("argv,status", [
    (["run", "--memory", "lots", "--", "true"], 2),
    (["run", "--pids", "0", "--", "true"], 2),
    (["run", "--deny", "mkdri", "--", "true"], 2),
    (["run", "--profile", "/nonexistent/x.toml", "--", "true"], 2),
    (["run", "--bind", "relative:/tmp/x", "--", "true"], 2),
    (["run", "--net", "everywhere", "--", "true"], 2),
    (["run"], 2),
    (["run", "--no-trace", "--", "/etc/passwd"], 126),
    (["run", "--no-trace", "--", "no-such-command-23"], 127),
])
def test_the_real_cli_gives_the_documented_status_in_one_line(argv, status):
    done = subprocess.run([WORKBENCH, *argv], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == status
    assert "Traceback" not in done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith("workbench: ")
    if status == 2:
        one_line(done.stderr)


def test_a_non_string_in_pass_env_is_a_profile_error():
    with pytest.raises(ProfileError):
        prof.from_dict({"process": {"pass_env": [23]}}, "p.toml")


# --- recordings --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> bytes:
    """A real recording of a traced run with a seccomp denial, as bytes."""
    from workbench.tracing import loader

    path = tmp_path_factory.mktemp("rec") / "run.sqlite"
    try:
        r = run_sandbox("mkdir /tmp/a; ls /nonexistent-23", trace=True, deny=["mkdir"], record=str(path))
    finally:
        loader.release_cached()
    assert r.status == 2
    return path.read_bytes()


def read_back(path: str) -> None:
    from workbench.record import open_recording

    try:
        with open_recording(path) as rec:
            for _ in rec.events():
                pass
    except RecordingError as exc:
        one_line(str(exc))


def test_the_recording_is_whole_before_it_is_damaged(recording, tmp_path):
    from workbench.record import open_recording

    path = tmp_path / "whole.sqlite"
    path.write_bytes(recording)
    with open_recording(path) as rec:
        assert rec.complete
        assert any(type(e).__name__ == "SeccompDenial" for e in rec.events())


@BOUNDED
@given(cut=st.floats(min_value=0.0, max_value=0.999))
def test_a_truncated_recording_is_read_or_refused_in_one_line(recording, tmp_path, cut):
    path = tmp_path / "cut.sqlite"
    path.write_bytes(recording[: int(len(recording) * cut)])
    read_back(str(path))


@pytest.mark.parametrize("damage", [
    "UPDATE events SET payload = substr(payload, 1, 20) WHERE kind = 'SyscallStats'",
    "UPDATE events SET payload = replace(payload, '\"errors\"', '\"drrors\"') WHERE kind = 'SyscallStats'",
    "UPDATE events SET payload = '[]' WHERE kind = 'SeccompDenial'",
])
def test_a_recording_with_a_damaged_event_is_refused_in_one_line(recording, tmp_path, damage):
    import sqlite3

    path = tmp_path / "damaged.sqlite"
    path.write_bytes(recording)
    with sqlite3.connect(path) as db:
        assert db.execute(damage).rowcount >= 1
    db.close()
    read_back(str(path))


@BOUNDED
@given(flips=st.lists(st.tuples(st.floats(min_value=0.0, max_value=0.999), st.integers(1, 255)),
                      min_size=1, max_size=23))
def test_a_corrupted_recording_is_read_or_refused_in_one_line(recording, tmp_path, flips):
    data = bytearray(recording)
    for where, xor in flips:
        data[int(len(data) * where)] ^= xor
    path = tmp_path / "flipped.sqlite"
    path.write_bytes(bytes(data))
    read_back(str(path))


@FEW
@given(cut=st.floats(min_value=0.0, max_value=0.999), flip=st.integers(0, 255))
def test_the_cli_explains_a_damaged_recording_or_refuses_it_in_one_line(recording, tmp_path, capfd, cut, flip):
    from workbench.cli.main import main

    data = bytearray(recording[: max(1, int(len(recording) * cut))])
    data[int(len(data) * cut * 0.7)] ^= flip
    path = tmp_path / "damaged.sqlite"
    path.write_bytes(bytes(data))
    capfd.readouterr()
    status = main(["explain", str(path)])
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert status in (0, 1, 2)
    if status == 2:
        one_line(err)


# --- Docker seccomp JSON -----------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) |
    st.sampled_from(["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_LOG", "SCMP_ACT_TRACE",
                     "SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64", "CAP_SYS_ADMIN", "mkdir", "clone", "mkdri", "1"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["defaultAction", "syscalls", "names", "name", "action", "errnoRet", "includes", "excludes", "arches",
         "caps", "args", "linux", "seccomp", "defaultErrnoRet"]), inner, max_size=4),
    max_leaves=12)
DOCKER = st.fixed_dictionaries({"defaultAction": JSON_VALUES}, optional={
    "syscalls": st.lists(st.fixed_dictionaries({}, optional={
        "names": JSON_VALUES, "name": JSON_VALUES, "action": JSON_VALUES, "errnoRet": JSON_VALUES,
        "includes": JSON_VALUES, "excludes": JSON_VALUES}), max_size=4) | JSON_VALUES,
    "defaultErrnoRet": JSON_VALUES}) | JSON_VALUES


@BOUNDED
@given(doc=DOCKER)
def test_any_docker_seccomp_json_imports_or_names_its_mistake(tmp_path, doc):
    from workbench.sandbox.seccomp_json import load_docker

    path = tmp_path / "seccomp.json"
    path.write_text(json.dumps(doc))
    try:
        table = load_docker(str(path))
    except ProfileError as exc:
        one_line(str(exc))
        return
    # What it imports is a seccomp table a profile accepts.
    prof.from_dict({"seccomp": table}, "imported.toml")


@pytest.mark.parametrize("doc", [{"defaultAction": []}, {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": 5},
                                 {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": 23,
                                                                                  "action": "SCMP_ACT_ERRNO"}]},
                                 {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                                     {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": "x"}]}])
def test_docker_seccomp_json_with_wrong_types_is_one_line(tmp_path, doc):
    from workbench.sandbox.seccomp_json import load_docker

    path = tmp_path / "seccomp.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ProfileError) as info:
        load_docker(str(path))
    one_line(str(info.value))


def test_docker_seccomp_json_that_is_not_json_is_one_line(tmp_path):
    from workbench.sandbox.seccomp_json import load_docker

    for text in ("", "{", "[1,2", "\x00\x01", '{"defaultAction": }'):
        path = tmp_path / "bad.json"
        path.write_text(text)
        with pytest.raises(ProfileError) as info:
            load_docker(str(path))
        one_line(str(info.value))


def test_nothing_here_prints_a_traceback_for_a_missing_file():
    done = subprocess.run([sys.executable, "-m", "workbench.cli.main", "explain", "/nonexistent/run.sqlite"],
                          capture_output=True, text=True, timeout=60, cwd=str(REPO),
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2
    one_line(done.stderr)


def _profile_file(tmp_path, text: str) -> str:
    path = tmp_path / "p.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("options,setting", [
    (["--pids", "1"], "pids"),  # no room for the command beside init
    (["--memory", "1"], "memory"),  # below what pid 1 needs to start
    (["--profile", "{tmp}/p.toml#[rlimits]\nnofile = 99999999999\n"], "nofile"),  # above our hard limit
    (["--profile", "{tmp}/p.toml#[process]\ncwd = \"/nonexistent\"\n"], "cwd"),
])
def test_a_valid_but_impossible_setting_is_named_in_the_one_line(tmp_path, options, setting):
    argv = []
    for opt in options:
        if opt.startswith("{tmp}"):
            _, text = opt.split("#", 1)
            opt = _profile_file(tmp_path, text)
        argv.append(opt)
    done = subprocess.run([WORKBENCH, "run", "--no-trace", "--quiet", *argv, "--", "true"], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode in (2, 125)
    one_line(done.stderr)
    assert setting in done.stderr, done.stderr


def test_the_largest_pids_limit_runs():
    # 4194304 is the kernel's own ceiling: with the launcher's extra process it becomes "max".
    done = subprocess.run([WORKBENCH, "run", "--no-trace", "--quiet", "--pids", "4194304", "--", "true"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
