"""What one pipeline run produced, in a JSON-able form, and how it goes to the task log.

Both paths share it: the synchronous operator logs each record as it arrives, the
deferrable one carries the records in the trigger event and logs them in
``execute_complete``. Each PowerShell stream goes to the log at its level, with the prefix
the ``psrp`` command line prints (``ERROR:``, ``WARNING:``, ``INFO:``, ``PROGRESS:``,
``VERBOSE:``, ``DEBUG:``); verbose is logged at INFO as Airflow's PSRP provider does.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

STREAM_LEVELS = {
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "information": logging.INFO,
    "progress": logging.INFO,
    "verbose": logging.INFO,
    "debug": logging.DEBUG,
}
STREAM_PREFIX = {
    "error": "ERROR",
    "warning": "WARNING",
    "information": "INFO",
    "progress": "PROGRESS",
    "verbose": "VERBOSE",
    "debug": "DEBUG",
}
# How many error records the task's exception message quotes in full.
MAX_ERRORS_IN_MESSAGE = 5


def record_entry(kind: str, record: Any) -> dict[str, Any]:
    """A stream record as a JSON-able dict: kind, message, and for errors the fields a reader needs."""
    entry: dict[str, Any] = {"kind": kind, "message": str(getattr(record, "message", "") or "")}
    if kind == "error":
        formatted = getattr(record, "formatted", None)
        entry["text"] = formatted() if callable(formatted) else entry["message"]
        for name in ("category", "category_info", "fully_qualified_error_id", "target", "exception_type"):
            value = getattr(record, name, None)
            entry[name] = None if value is None else str(value)
    return entry


def result_entries(result: Any) -> list[dict[str, Any]]:
    """The records of an InvocationResult (e.g. of a session-init command), stream by stream."""
    entries: list[dict[str, Any]] = []
    for kind, attr in (("error", "errors"), ("warning", "warnings"), ("information", "information"),
                       ("progress", "progress"), ("verbose", "verbose"), ("debug", "debug")):
        entries.extend(record_entry(kind, record) for record in getattr(result, attr, None) or [])
    return entries


def output_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def log_entry(logger: Any, entry: dict[str, Any], min_level: int) -> None:
    """One record to the log at its stream's level, unless below min_level."""
    kind = entry["kind"]
    level = STREAM_LEVELS.get(kind, logging.INFO)
    if level < min_level:
        return
    prefix = STREAM_PREFIX.get(kind, kind.upper())
    text = entry.get("text") or entry["message"]
    lines = text.rstrip("\r\n").splitlines() or [""]
    for line in lines:
        logger.log(level, "%s: %s", prefix, line.rstrip())


@dataclass
class RunResult:
    """One pipeline run: records in arrival order, output (when collected), final state, exit code."""

    records: list[dict[str, Any]] = field(default_factory=list)
    output: list[Any] | None = None
    output_count: int = 0
    state: str = "NotStarted"
    had_errors: bool = False
    exit_code: int | None = None

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["kind"] == "error"]

    @property
    def failed(self) -> bool:
        """The task fails: an error record, a failed or stopped pipeline, or a non-zero exit code."""
        return self.had_errors or bool(self.errors) or self.state != "Completed" or bool(self.exit_code)

    def failure_message(self, what: str) -> str:
        errors = self.errors
        parts = [f"{what}: the PowerShell pipeline {self.state.lower()}"]
        if errors:
            parts[0] += f" with {len(errors)} error record{'s' if len(errors) != 1 else ''}"
        if self.exit_code:
            parts[0] += f" and exit code {self.exit_code}" if errors else f" with exit code {self.exit_code}"
        for entry in errors[:MAX_ERRORS_IN_MESSAGE]:
            parts.append(entry.get("text") or entry["message"])
        if len(errors) > MAX_ERRORS_IN_MESSAGE:
            parts.append(f"... and {len(errors) - MAX_ERRORS_IN_MESSAGE} more (see the task log)")
        return "\n".join(parts)

    def to_payload(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "output": self.output,
            "output_count": self.output_count,
            "state": self.state,
            "had_errors": self.had_errors,
            "exit_code": self.exit_code,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> "RunResult":
        return cls(
            records=list(payload.get("records") or []),
            output=payload.get("output"),
            output_count=int(payload.get("output_count") or 0),
            state=str(payload.get("state") or "Failed"),
            had_errors=bool(payload.get("had_errors")),
            exit_code=payload.get("exit_code"),
        )

    def finish(self, result: Any) -> list[dict[str, Any]]:
        """Takes state, had_errors and exit code from an InvocationResult; returns a terminating error record
        not seen as an event (to be logged)."""
        self.state = str(getattr(result, "state", self.state))
        self.had_errors = bool(getattr(result, "had_errors", False)) or self.had_errors
        self.exit_code = getattr(result, "exit_code", None)
        terminating = getattr(result, "terminating_error", None)
        if terminating is not None:
            entry = record_entry("error", terminating)
            if entry not in self.records:
                self.records.append(entry)
                return [entry]
        return []
