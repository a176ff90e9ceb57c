"""Rank the rules' candidates into `Finding`s, over a finished session or live on a bus.

Ranking: a candidate's `strength` (how conclusive its kind of evidence is) plus its proximity to
the failure: 0 for evidence at the start of the run, up to 1 for evidence at the exit. The failure
is usually the last thing that went wrong, and errors a program shrugged off come early.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterable

from workbench.core import events as ev
from workbench.core.bus import Bus
from workbench.diagnose import rules, rules_hints, rules_privileges, rules_runtime
from workbench.diagnose.facts import Facts
from workbench.diagnose.rules import Candidate

RULES = (
    rules.seccomp_denials,
    rules.missing_paths,
    rules.readonly_writes,
    rules_privileges.capabilities,
    rules_privileges.user_namespace,
    rules_runtime.memory_oom,
    rules_runtime.pids_limit,
    rules_runtime.network,
    rules_runtime.exec_failures,
    rules_runtime.gvisor_unsupported,
    rules_hints.stderr_hints,
)
LIVE_INTERVAL_S = 0.25


def _score(c: Candidate, f: Facts) -> float:
    start, end = f.t0, f.end_ns
    proximity = 0.5
    if start is not None and end is not None and end > start:
        proximity = min(1.0, max(0.0, (c.last_ns - start) / (end - start)))
    score = c.strength + proximity
    if f.exited is not None and not f.failed_run:
        score -= 1.0  # the command succeeded: whatever went wrong, it coped
    return round(score, 3)


def rank(facts: Facts) -> list[ev.Finding]:
    """Every rule over `facts`, as Findings, closest to the failure first."""
    findings = []
    for rule in RULES:
        for c in rule(facts):
            findings.append(ev.Finding(
                ts_ns=c.last_ns, layer=c.layer, summary=c.summary, evidence=tuple(c.evidence), fix=c.fix,
                score=_score(c, facts), fix_options=tuple(c.fix_options), fix_profile=c.fix_profile,
                rule=f"{c.rule}:{c.key}" if c.key else c.rule, pid=c.pid))
    findings.sort(key=lambda x: (-x.score, -x.ts_ns))
    return findings


def diagnose(events: Iterable[ev.Event], profile: dict[str, Any] | None = None) -> list[ev.Finding]:
    """Findings for a session's events (a list, a recording's `.events()`...), best first.

    `profile` is the flat `Profile.to_dict()`; when None, the one in `SessionStarted` is used.
    """
    return rank(Facts(profile).add_all(events))


class LiveDiagnoser:
    """Diagnoses while the session runs: publishes each new `Finding` on the bus as its evidence
    arrives (at most every LIVE_INTERVAL_S), and once more when the sandbox exits. A finding whose
    evidence or score changed is published again with the same `rule`: keep the latest per rule.

    The bus callback only files the event into `Facts` (bounded, cheap); rules run in a thread we
    own. Call `finish()` after the last event (the session does, before `SessionEnded`).
    """

    def __init__(self, bus: Bus, profile: dict[str, Any] | None = None):
        self.bus = bus
        self._facts = Facts(profile)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._seen_version = -1
        self._published: dict[str, ev.Finding] = {}
        self.findings: list[ev.Finding] = []
        """The latest ranked findings."""
        self._unsubscribe = bus.subscribe(self._on_event)
        self._thread = threading.Thread(target=self._run, name="workbench-diagnoser", daemon=True)
        self._thread.start()

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.Finding):
            return  # ours, or someone else's: not evidence
        with self._lock:
            self._facts.add(event)
        if isinstance(event, ev.SandboxExited):
            self._wake.set()

    def _evaluate(self) -> list[ev.Finding]:
        with self._lock:
            if self._facts.version == self._seen_version:
                return self.findings
            self._seen_version = self._facts.version
            facts = self._facts.snapshot()
        findings = rank(facts)  # outside the lock: the bus's producers never wait for the rules
        self.findings = findings
        for finding in findings:
            # Republished when anything but its time changed (more evidence, a new score once the
            # exit is known): consumers keep the latest per `rule`.
            old = self._published.get(finding.rule)
            if old is None or (old.summary, old.score, old.evidence, old.fix) != \
                    (finding.summary, finding.score, finding.evidence, finding.fix):
                self._published[finding.rule] = finding
                self.bus.publish(finding)
        return findings

    def _run(self) -> None:
        interval = LIVE_INTERVAL_S
        while not self._stop:
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop:
                break
            try:
                started = time.monotonic()
                self._evaluate()
                # Under a flood of failing calls an evaluation costs tens of ms: stay below a
                # fifth of a core by waiting four times as long as it took.
                interval = max(LIVE_INTERVAL_S, 4 * (time.monotonic() - started))
            except Exception as exc:  # a rule bug must not kill the session; say it once
                self.bus.publish(ev.Notice("error", f"diagnosis failed: {exc!r}", "diagnose"))
                self._stop = True

    def finish(self) -> list[ev.Finding]:
        """Final diagnosis over everything received; publishes what is new. Idempotent."""
        if not self._stop or self._thread.is_alive():
            self._stop = True
            self._wake.set()
            self._thread.join()
        self._unsubscribe()
        try:
            return self._evaluate()
        except Exception as exc:  # noqa: BLE001 - as in _run: report, never break the teardown
            self.bus.publish(ev.Notice("error", f"diagnosis failed: {exc!r}", "diagnose"))
            return self.findings
