"""Checks: a lesson's expected observations, evaluated over what one run really produced.

`Facts` is what a run left behind: its events, its output, its JSON report, and the state of a few
host paths after it. `evaluate()` turns one `Check` into a `CheckResult` that says passed or not
and, either way, what was seen — a learner must be able to tell a wrong expectation from a broken
layer. While a run is still going (`final=False`), a check that can still change its answer is
`pending`; checks about something that appeared (a denial, a line of output) pass as soon as it
does.
"""

from __future__ import annotations

import dataclasses
import re
import signal as signal_mod
from dataclasses import dataclass, field
from typing import Any

from workbench.core import events as ev
from workbench.lessons.model import Check

OPERATORS = {"eq", "ne", "min", "max", "near", "within"}
_GROWING = {"stdout_matches", "stderr_matches", "output_matches", "denial", "finding", "event"}
"""Kinds whose answer can only go from failed to passed as a run goes on: shown passed live."""


@dataclass
class Facts:
    """Everything a check may look at, for one run of one step."""

    report: dict[str, Any] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    events: list[ev.Event] = field(default_factory=list)
    """Every event but the syscall stream (counts are in the report)."""
    stream: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """Syscall stream counts by source (`host`: our probes, `gvisor`: the Sentry's log), then name:
    {"count": n, "errors": {errno: n}}. The report's `syscalls` are the exact in-kernel counts."""
    host: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Host path -> {"exists": bool, "uid": int, "gid": int, "mode": int} after the run."""
    scratch: str = ""
    """The lesson's scratch directory on the host: `{scratch}` in checks."""
    unavailable: str | None = None
    """Why the step could not run at all (a backend that is not installed), for every check."""
    ended: bool = False


@dataclass(frozen=True)
class CheckResult:
    check: Check
    passed: bool | None
    """True, False, or None while the run goes on and the answer can still change."""
    seen: str
    """What was observed, in words, whatever the verdict."""

    @property
    def mark(self) -> str:
        return {True: "passed", False: "FAILED", None: "pending"}[self.passed]


def evaluate(check: Check, facts: Facts, final: bool = True) -> CheckResult:
    if facts.unavailable:
        return CheckResult(check, False if final or facts.ended else None, facts.unavailable)
    passed, seen = _KINDS[check.kind](_fill(check.spec, facts.scratch), facts)
    if not final and not (passed and check.kind in _GROWING):
        return CheckResult(check, None, seen)
    return CheckResult(check, passed, seen)


def evaluate_all(checks, facts: Facts, final: bool = True) -> list[CheckResult]:
    return [evaluate(c, facts, final) for c in checks]


def _fill(spec: Any, scratch: str) -> Any:
    """`{scratch}` in any string of a spec (plain replace: regexes keep their own braces)."""
    if isinstance(spec, str):
        return spec.replace("{scratch}", scratch)
    if isinstance(spec, dict):
        return {k: _fill(v, scratch) for k, v in spec.items()}
    if isinstance(spec, list):
        return [_fill(v, scratch) for v in spec]
    return spec


# --- values ------------------------------------------------------------------------------------


def _short(text: str, limit: int = 120) -> str:
    text = " ⏎ ".join(line for line in text.strip().splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _lookup(data: Any, path: str) -> tuple[bool, Any]:
    for part in path.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return False, None
    return True, data


def _compare(value: Any, want: Any, report: dict) -> bool:
    """`want` is a literal (equality) or a table of operators: eq, ne, min, max, near (+ within)."""
    if not (isinstance(want, dict) and want and set(want) <= OPERATORS):
        return value == want
    if "eq" in want and value != want["eq"]:
        return False
    if "ne" in want and value == want["ne"]:
        return False
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ("min" in want or "max" in want or "near" in want) and not number:
        return False
    if "min" in want and value < want["min"]:
        return False
    if "max" in want and value > want["max"]:
        return False
    if "near" in want:
        target = want["near"]
        if isinstance(target, str):  # another value of the report: peak near the limit
            found, target = _lookup(report, target)
            if not found or not isinstance(target, (int, float)):
                return False
        if abs(value - target) > abs(target) * float(want.get("within", 0.05)):
            return False
    return True


def _want_text(want: Any) -> str:
    if isinstance(want, dict) and want and set(want) <= OPERATORS:
        return ", ".join(f"{k} {v}" for k, v in want.items())
    return repr(want)


def _flatten(spec: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """{"cgroup": {"oom_killed": true}} -> [("cgroup.oom_killed", True)]; operator tables are leaves."""
    out = []
    for key, value in spec.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and not set(value) <= OPERATORS:
            out += _flatten(value, path + ".")
        else:
            out.append((path, value))
    return out


# --- the kinds ---------------------------------------------------------------------------------


def _expect(spec: dict, facts: Facts) -> tuple[bool, str]:
    r = facts.report
    sig = r.get("signal")
    seen = f"exit {r.get('exit_code')}" if sig is None else f"killed by {signal_mod.Signals(sig).name}"
    ok = True
    for key, want in spec.items():
        if key == "signal":
            name = signal_mod.Signals(sig).name if sig else "none"
            ok &= name == str(want).upper()
        elif key == "exit_code":
            ok &= _compare(r.get("exit_code"), want, r)
        else:
            ok &= _compare(r.get(key), want, r)
    return ok, seen


def _matches(stream: str, negate: bool = False):
    def check(pattern: str, facts: Facts) -> tuple[bool, str]:
        text = facts.stdout + facts.stderr if stream == "output" else getattr(facts, stream)
        m = re.search(pattern, text, re.MULTILINE)
        if m and not negate:
            return True, f"{stream}: {_short(_line_of(text, m))}"
        if not text.strip():
            return negate, f"{stream} was empty"
        if negate and m:
            return False, f"{stream} has it: {_short(_line_of(text, m))}"
        return negate, f"{stream}: {_short(text)}"
    return check


def _line_of(text: str, m: re.Match) -> str:
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.end())
    return text[start: end if end != -1 else len(text)]


def _stdout_value(spec: dict, facts: Facts) -> tuple[bool, str]:
    m = re.search(spec["pattern"], facts.stdout, re.MULTILINE)
    if not m:
        return False, f"no line matching {spec['pattern']!r} in stdout: {_short(facts.stdout) or 'empty'}"
    try:
        value = int(m.group(1))
    except (IndexError, ValueError):
        return False, f"matched {m.group(0)!r}, but its first group is not a number"
    want = {k: v for k, v in spec.items() if k != "pattern"}
    return _compare(value, want, facts.report), f"{value} ({_short(_line_of(facts.stdout, m))})"


def _report(spec: dict, facts: Facts) -> tuple[bool, str]:
    ok, seen = True, []
    for path, want in _flatten(spec):
        found, value = _lookup(facts.report, path)
        good = found and _compare(value, want, facts.report)
        ok &= good
        seen.append(f"{path} = {value!r}" if found else f"{path} missing from the report")
        if not good:
            seen[-1] += f" (expected {_want_text(want)})"
    return ok, "; ".join(seen)


def _denial_text(d: dict) -> str:
    what = d["errno"] if d.get("action") == "errno" else d.get("action")
    args = ", ".join(f"{k}={v}" for k, v in d.get("args", {}).items())
    return f"{d['syscall']}({args}) {what} by pid {d.get('pid')}, rule: {d.get('rule') or '?'}"


def _denial(spec: dict, facts: Facts) -> tuple[bool, str]:
    denials = facts.report.get("seccomp_denials", [])
    for d in denials:
        if all(_field_ok(d, k, v) for k, v in spec.items()):
            return True, _denial_text(d)
    if not denials:
        return False, "no seccomp denial in this run" + _probes_note(facts)
    return False, "other denials: " + "; ".join(_denial_text(d) for d in denials[:3])


def _field_ok(d: dict, key: str, want: Any) -> bool:
    if key.endswith("_contains"):
        return str(want) in str(d.get(key.removesuffix("_contains"), ""))
    return d.get(key) == want


def _probes_note(facts: Facts) -> str:
    probes = facts.report.get("probes", {})
    off = [f"{name} ({p.get('reason')})" for name, p in probes.items() if p.get("state") == "off"]
    return f" — probes off: {', '.join(off)}" if off else ""


def _no_denial(spec: Any, facts: Facts) -> tuple[bool, str]:
    denials = facts.report.get("seccomp_denials", [])
    if not denials:
        # "detached" once the run is over: it was attached while it ran.
        probe = facts.report.get("probes", {}).get("seccomp", {})
        if probe.get("state") not in ("attached", "detached"):
            return False, "the seccomp probe was not attached: nothing could have seen a denial" + _probes_note(facts)
        return True, "no seccomp denial in this run (probes attached)"
    return False, "; ".join(_denial_text(d) for d in denials[:3])


def _finding(spec: dict, facts: Facts) -> tuple[bool, str]:
    findings = facts.report.get("diagnosis", [])
    pool = findings[:1] if spec.get("top") else findings
    for f in pool:
        if all(_field_ok(f, k, v) for k, v in spec.items() if k != "top"):
            return True, f"[{f['layer']}] {f['summary']}"
    if not findings:
        return False, "no finding in this run"
    return False, "findings: " + "; ".join(f"[{f['layer']}] {f['summary']}" for f in findings[:3])


def _syscall(spec: dict, facts: Facts) -> tuple[bool, str]:
    name = spec["name"]
    if "source" in spec:  # one view only: the host's probes or gVisor's Sentry
        if not facts.stream.get(spec["source"]):
            return False, f"no syscalls from source {spec['source']!r} in this run's stream" + {
                "gvisor": " (the Sentry's log was not followed onto the bus)"}.get(spec["source"], "")
        stat = facts.stream[spec["source"]].get(name)
        name = f"{name} (seen by {spec['source']})"
    else:
        stat = facts.report.get("syscalls", {}).get(name)
    count = stat["count"] if stat else 0
    errors = stat["errors"] if stat else {}
    if "errno" in spec:
        n = errors.get(spec["errno"], 0)
        want = {k: v for k, v in spec.items() if k in OPERATORS} or {"min": 1}
        seen = f"{name}: {n} × {spec['errno']} of {count} calls" + ("" if stat else _probes_note(facts))
        return _compare(n, want, facts.report), seen
    want = {k: v for k, v in spec.items() if k in OPERATORS} or {"min": 1}
    errs = ", ".join(f"{k} {v}" for k, v in errors.items())
    return _compare(count, want, facts.report), f"{name}: {count} calls" + (f" ({errs})" if errs else "")


def _event(spec: dict, facts: Facts) -> tuple[bool, str]:
    kind = spec["type"]
    fields = {k: v for k, v in spec.items() if k not in {"type", "min", "max"}}
    hits = [e for e in facts.events if type(e).__name__ == kind
            and all(getattr(e, k, None) == v for k, v in fields.items())]
    want = {k: v for k, v in spec.items() if k in ("min", "max")} or {"min": 1}
    seen = f"{len(hits)} {kind} event(s)"
    if hits:
        first = hits[0]
        detail = ", ".join(f"{f.name}={getattr(first, f.name)!r}" for f in dataclasses.fields(first)
                           if f.name != "ts_ns")
        seen += f"; first: {_short(detail, 100)}"
    return _compare(len(hits), want, facts.report), seen


def _host_file(spec: dict, facts: Facts) -> tuple[bool, str]:
    st = facts.host.get(spec["path"], {"exists": False})
    if not st["exists"]:
        return spec.get("exists", True) is False, f"{spec['path']} does not exist on the host"
    seen = f"{spec['path']} exists on the host, owner uid {st['uid']} gid {st['gid']}"
    ok = spec.get("exists", True) is True
    for key in ("uid", "gid"):
        if key in spec:
            ok &= st[key] == spec[key]
    return ok, seen


_KINDS = {
    "expect": _expect,
    "stdout_matches": _matches("stdout"),
    "stderr_matches": _matches("stderr"),
    "output_matches": _matches("output"),
    "stdout_lacks": _matches("stdout", negate=True),
    "stderr_lacks": _matches("stderr", negate=True),
    "stdout_value": _stdout_value,
    "report": _report,
    "denial": _denial,
    "no_denial": _no_denial,
    "finding": _finding,
    "syscall": _syscall,
    "event": _event,
    "host_file": _host_file,
}
