"""benchmarks/run.py runs and reports every figure (no timed assertions: benchmarks are
scripts, not tests)."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

KEYS = (
    "b1_ratio",
    "b1_ours_per_s",
    "b1_raw_per_s",
    "b2_p50_ms",
    "b2_p95_ms",
    "b2_cold_p50_ms",
    "b2_raw_python_p50_ms",
    "b3_ratio_vs_huey",
    "b3_ratio_vs_huey_inproc",
    "b3_ours_per_s",
    "b3_huey_spawn_per_s",
    "b3_huey_inproc_per_s",
    "b4_ratio",
    "b4_ours_mb_s",
    "b4_raw_mb_s",
    "b4_rss_growth_mb",
    "b4_loop_lag_p99_ms",
    "b4_ratio_vs_sqlite_ceiling",
    "b5_info_p50_ms",
    "b5_info_p99_ms",
    "b5_list_p50_ms",
    "b5_list_p99_ms",
    "b5_rows",
    "b6_median_ms",
    "b6_p95_ms",
    "b7_ratio_vs_huey_inproc",
    "b7_ours_per_s",
    "b7_fresh_per_s",
    "b7_huey_inproc_per_s",
    "b7_ratio_vs_fresh",
    "b7_store_ceiling_per_s",
    "b7_ratio_of_store_ceiling",
    "b8_claim_p50_ms",
    "b8_claim_p99_ms",
    "b9_list_p99_ms",
    "b9_list_meta_p99_ms",
    "b10_fire_delay_median_ms",
    "b10_fire_delay_p95_ms",
    "b11_input_median_ms",
    "b12_event_median_ms",
    "b13_tail_ms",
    "b13_stderr_tail_ms",
    "b13_tail_peak_mb",
)
INTERNALS_MEASURED = {"executor_startup.py", "store_ceiling.py"}
"""Scripts that time aiobgproc's internals themselves (the executor's own start-up, the
store's operations alone)."""
HUEY_KEYS = (
    "b3_ratio_vs_huey",
    "b3_ratio_vs_huey_inproc",
    "b3_huey_spawn_per_s",
    "b3_huey_inproc_per_s",
    "b7_ratio_vs_huey_inproc",
    "b7_huey_inproc_per_s",
)
RANGE_KEYS = (
    "b1_ratio_range",
    "b3_ratio_vs_huey_range",
    "b3_ratio_vs_huey_inproc_range",
    "b7_ratio_vs_huey_inproc_range",
    "b7_ratio_vs_fresh_range",
)
"""[lowest, highest] of the pairs' ratios whose median is the key without ``_range``."""


@pytest.mark.slow
def test_smoke_run_prints_one_json_object_with_every_figure(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--json"],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=False,
    )
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 0, stderr
    figures = json.loads(result.stdout)  # one JSON document and nothing else
    assert isinstance(figures, dict)
    assert figures["mode"] == "smoke"
    assert {"cpu_count", "platform", "python"} <= set(figures["machine"])
    assert isinstance(figures["date"], str)
    huey_missing = importlib.util.find_spec("huey") is None
    for key in KEYS:
        assert key in figures, key
        value = figures[key]
        if value is None:
            assert huey_missing, f"{key} is null\n{stderr}"
            assert key in HUEY_KEYS, f"{key} is null\n{stderr}"
        else:
            assert isinstance(value, int | float), key
            assert not isinstance(value, bool), key
            assert value >= 0, key
    for key in RANGE_KEYS:
        value = figures[key]
        if value is None:
            assert huey_missing, f"{key} is null\n{stderr}"
            continue
        low, high = value
        assert low <= figures[key.removesuffix("_range")] <= high, key
    if huey_missing:
        assert "huey is not importable" in stderr
    assert figures["b5_rows"] > 0


def test_benchmarks_use_only_the_public_api() -> None:
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        if path.name in INTERNALS_MEASURED:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module is not None:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                assert not name.startswith("aiobgproc."), f"{path.name}:{node.lineno} {name}"
