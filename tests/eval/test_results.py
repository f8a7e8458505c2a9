"""results.json helpers: seed summaries, per-entry seeds across schema versions, loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tirgym.errors import TirgymError
from tirgym.eval.results import (
    RESULTS_SCHEMA,
    RESULTS_SCHEMA_VERSION,
    entry_seeds,
    load_results,
    seed_summary,
    summary_seeds,
)


def test_seed_summaries_round_trip() -> None:
    assert seed_summary([5, 6, 7]) == {"start": 5, "count": 3}
    assert seed_summary([5, 7]) == {"list": [5, 7], "count": 2}
    for seeds in ([5, 6, 7], [5, 7], [9]):
        assert summary_seeds(seed_summary(seeds)) == seeds


def test_entry_seeds_reads_v1_and_v2_files() -> None:
    v1 = {"seeds": {"start": 10, "count": 2}, "entries": [{"name": "A"}, {"name": "B"}]}
    assert entry_seeds(v1) == {"A": [10, 11], "B": [10, 11]}
    v2 = {
        "seeds": None,
        "entries": [
            {"name": "A", "seeds": {"start": 10, "count": 2}},
            {"name": "D", "seeds": {"list": [1, 4], "count": 2}},
        ],
    }
    assert entry_seeds(v2) == {"A": [10, 11], "D": [1, 4]}


def test_load_results_checks_schema(tmp_path: Path) -> None:
    with pytest.raises(TirgymError, match="no results.json"):
        load_results(tmp_path)
    path = tmp_path / "results.json"
    for junk in ("not json", json.dumps([1, 2]), json.dumps({"schema": "other"})):
        path.write_text(junk)
        with pytest.raises(TirgymError, match="not a tirgym eval results file"):
            load_results(tmp_path)
    path.write_text(json.dumps({"schema": RESULTS_SCHEMA, "schema_version": 99}))
    with pytest.raises(TirgymError, match="Upgrade tirgym"):
        load_results(path)
    ok = {"schema": RESULTS_SCHEMA, "schema_version": RESULTS_SCHEMA_VERSION}
    path.write_text(json.dumps(ok))
    assert load_results(tmp_path) == ok
