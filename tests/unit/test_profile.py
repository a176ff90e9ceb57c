"""Profile validation (pure unit tests: no kernel involved)."""

from __future__ import annotations

import pytest

from workbench.core.errors import ProfileError
from workbench.sandbox import profile as prof


def test_bundled_profiles_validate():
    assert prof.bundled_names() == ["default", "permissive", "strict"]
    for name in prof.bundled_names():
        p = prof.load(name)
        assert p.name == name


@pytest.mark.parametrize("data,message", [
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"limits": {"memory": "lots"}}, "limits.memory: expected a size"),
    ({"limits": {"memory": -5}}, "limits.memory: size must be positive"),
    ({"limits": {"pids": 0}}, "limits.pids: must be between 1"),
    ({"limits": {"cpus": "fast"}}, "limits.cpus: expected a number of CPUs"),
    ({"seccomp": {"syscalls": ["mkdri"]}}, "unknown syscall 'mkdri': did you mean mkdir"),
    ({"seccomp": {"mode": "maybe"}}, "'maybe' is not one of off, deny, allow"),
    ({"seccomp": {"errno": "EWHAT"}}, "unknown errno 'EWHAT'"),
    ({"capabilities": {"keep": ["cap_fly"]}}, "unknown capability 'cap_fly'"),
    ({"network": {"mode": "veth"}, "namespaces": {"net": False}}, "network.mode = 'veth' needs namespaces.net"),
    ({"seccomp": {"mode": "deny", "syscalls": ["mkdir"]}, "capabilities": {"no_new_privs": False}},
     "conflicts with capabilities.no_new_privs = false"),
    ({"filesystem": {"binds": ["relative/path"]}}, "bind source must be an absolute path"),
    ({"process": {"hostname": "bad host"}}, "is not a valid hostname"),
    ({"user": {"uid": "root"}}, "user.uid: expected a number"),
])
def test_mistakes_name_the_key_and_the_fix(data, message):
    with pytest.raises(ProfileError) as info:
        prof.from_dict(data, "mine.toml")
    text = str(info.value)
    assert message in text
    assert text.startswith("mine.toml")
    assert "\n" not in text


def test_sizes():
    assert prof.parse_size("512M", "x") == 512 << 20
    assert prof.parse_size("1.5GiB", "x") == 3 << 29
    assert prof.parse_size(4096, "x") == 4096
    with pytest.raises(ProfileError):
        prof.parse_size(True, "x")


def test_overrides_add_to_the_seccomp_policy():
    base = prof.load("default")
    p = prof.apply_overrides(base, deny=["mkdir"], allow=["ptrace"], memory="64M", pids="23", net="loopback",
                             binds=["/etc:/tmp/etc:ro"])
    assert "mkdir" in p.seccomp.syscalls and "ptrace" not in p.seccomp.syscalls
    assert (p.memory, p.pids, p.net) == (64 << 20, 23, "loopback")
    assert p.binds[-1] == prof.Bind("/etc", "/tmp/etc", True)
    assert "mkdir" not in base.seccomp.syscalls  # the bundled profile is not changed

    strict = prof.apply_overrides(prof.load("strict"), allow=["ptrace"], deny=["mkdir"])
    assert "ptrace" in strict.seccomp.syscalls and "mkdir" not in strict.seccomp.syscalls


def test_unknown_profile_and_bad_toml(tmp_path):
    with pytest.raises(ProfileError, match="no bundled profile 'nope'.*default, permissive, strict"):
        prof.load("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("[seccomp\nmode = 1")
    with pytest.raises(ProfileError, match="bad.toml: not valid TOML"):
        prof.load(str(bad))
