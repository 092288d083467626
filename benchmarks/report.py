"""What a run of benchmarks/run.py reports besides its figures (the machine, the commit
measured, the PostgreSQL versions), and the human table printed without ``--json``."""

from __future__ import annotations

import importlib
import os
import platform
import sqlite3
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.harness import ROOT, say
from benchmarks.stores import PostgresStores

Targets = Mapping[str, tuple[str, float, str]]


def source() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it (best effort)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    status = git("status", "--porcelain", "--untracked-files=no", "--", "src")
    return {
        "commit": git("rev-parse", "HEAD"),
        "src_dirty": None if status is None else bool(status),
    }


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
    }


def postgres_versions(stores: PostgresStores) -> dict[str, Any]:
    """The server's version and the client libraries' (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, Any] = {"postgresql": stores.server_version}
    for package in ("asyncpg", "procrastinate", "psycopg"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    if found["psycopg"] is not None:
        try:  # not imported by name: psycopg is not a dependency of ours
            found["psycopg_impl"] = importlib.import_module("psycopg").pq.__impl__
        except ImportError as exc:  # e.g. no libpq
            found["psycopg_impl"] = f"unavailable: {exc}"
    if stores.server is None:
        say("  the PostgreSQL server is not on this machine: its CPU is not metered")
    return found


def verdict(targets: Targets, key: str, value: Any) -> str:
    if key not in targets:
        return ""
    if value is None:
        return "n/a"
    comparison, threshold, _ = targets[key]
    met = value >= threshold if comparison == ">=" else value < threshold
    return "pass" if met else "MISS"


def missed(targets: Targets, figures: Mapping[str, Any]) -> list[str]:
    """The targets the figures miss, in the targets' order."""
    return [
        key for key in targets if key in figures and verdict(targets, key, figures[key]) == "MISS"
    ]


def table(figures: dict[str, Any], names: Sequence[str], targets: Targets) -> str:
    """The figures of the benchmarks ``names`` (in that order), each beside its target."""
    width = max([26, *(len(key) for key in figures if key[:1] == "b" and key[1:2].isdigit())])
    lines = [
        f"aiobgproc benchmarks, {figures['mode']} mode, {figures['date']}",
        "machine: " + ", ".join(f"{key} {value}" for key, value in figures["machine"].items()),
        f"source: commit {figures['source']['commit']}"
        + (" with uncommitted changes in src/" if figures["source"]["src_dirty"] else ""),
        "",
        f"{'figure':{width}} {'value':>12}  {'target':18} result",
    ]
    for name in names:
        keys = [key for key in figures if key.startswith(f"{name}_")]
        for key in keys:
            value = figures[key]
            if isinstance(value, list):  # a range: lowest-highest
                shown = "-".join(f"{item:,}" for item in value)
            else:
                shown = (
                    "null"
                    if value is None
                    else f"{value:,}"
                    if not isinstance(value, bool)
                    else str(value)
                )
            target = ""
            if key in targets:
                comparison, threshold, note = targets[key]
                target = f"{comparison} {threshold:g}" + (f" ({note})" if note else "")
            line = f"{key:{width}} {shown:>12}  {target:18} {verdict(targets, key, value)}"
            lines.append(line.rstrip())
        if name in figures["interference_pct"]:
            lines.append(
                f"{'  (interference % CPU)':{width}} {figures['interference_pct'][name]:>12}"
            )
        if name in figures.get("postgres_cpu_pct", {}):
            lines.append(
                f"{'  (PostgreSQL % CPU)':{width}} {figures['postgres_cpu_pct'][name]:>12}"
            )
    notes = [
        key + (f" ({targets[key][2]})" if targets[key][2] else "")
        for key in figures["targets_missed"]
    ]
    lines += ["", "targets missed: " + (", ".join(notes) if notes else "none")]
    return "\n".join(lines)
