"""The validate stage: each kind of bad input is reported by file, column, check and line."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import BIKE_SHARING_CSV, REPO_ROOT, needs_shared_data
from traffic_forecast.core.config import Config
from traffic_forecast.core.errors import ConfigError
from traffic_forecast.core.settings import load_config
from traffic_forecast.data.tables import Failure
from traffic_forecast.pipeline import outputs, validate

Mutation = Callable[[Path], None]


def _edit_lines(name: str, edit: Callable[[list[str]], list[str]]) -> Mutation:
    def mutate(raw_dir: Path) -> None:
        path = raw_dir / name
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(edit(lines)), encoding="utf-8")

    return mutate


def _set_cell(name: str, line: int, column: int, value: str) -> Mutation:
    def edit(lines: list[str]) -> list[str]:
        cells = lines[line - 1].rstrip("\n").split(",")
        cells[column] = value
        lines[line - 1] = ",".join(cells) + "\n"
        return lines

    return _edit_lines(name, edit)


def _drop_column(name: str, column: int) -> Mutation:
    def edit(lines: list[str]) -> list[str]:
        return [
            ",".join(c for i, c in enumerate(ln.rstrip("\n").split(",")) if i != column) + "\n"
            for ln in lines
        ]

    return _edit_lines(name, edit)


def _write_bytes(name: str, content: Callable[[bytes], bytes]) -> Mutation:
    def mutate(raw_dir: Path) -> None:
        path = raw_dir / name
        path.write_bytes(content(path.read_bytes()))

    return mutate


TRAFFIC, EVENTS, INFRA = "traffic.csv", "sale_events.csv", "infrastructure.csv"

# (mutation, file, column, check, CSV lines the report must name; () = not row-specific)
BAD_INPUTS: dict[str, tuple[Mutation, str, str, str, tuple[int, ...]]] = {
    "missing_column": (_drop_column(TRAFFIC, 1), TRAFFIC, "sessions", "column_in_dataframe", ()),
    "extra_column": (
        _edit_lines(
            TRAFFIC,
            lambda ls: [ls[0].rstrip() + ",region\n"] + [ln.rstrip() + ",eu\n" for ln in ls[1:]],
        ),
        TRAFFIC,
        "region",
        "column_in_schema",
        (),
    ),
    "wrong_dtype": (
        _set_cell(TRAFFIC, 5, 1, "12k"),
        TRAFFIC,
        "sessions",
        "parsable_as_number",
        (5,),
    ),
    "float_in_int_column": (_set_cell(INFRA, 7, 1, "3.5"), INFRA, "instances", "integer", (7,)),
    "unparsable_timestamp": (
        _set_cell(TRAFFIC, 5, 0, "2024-13-45 00:00:00"),
        TRAFFIC,
        "timestamp",
        "parsable_as_timestamp",
        (5,),
    ),
    "duplicated_hour": (
        _edit_lines(TRAFFIC, lambda ls: [*ls[:5], ls[4], *ls[5:]]),
        TRAFFIC,
        "timestamp",
        "field_uniqueness",
        (5, 6),
    ),
    "gap_in_hours": (
        _edit_lines(TRAFFIC, lambda ls: [*ls[:4], *ls[5:]]),
        TRAFFIC,
        "timestamp",
        "no_gap_before",
        (5,),
    ),
    "negative_traffic": (
        _set_cell(TRAFFIC, 9, 1, "-5"),
        TRAFFIC,
        "sessions",
        "greater_than_or_equal_to(0.0)",
        (9,),
    ),
    "nan_spelled": (_set_cell(TRAFFIC, 9, 1, "NaN"), TRAFFIC, "sessions", "not_nan", (9,)),
    # pandas raises on a column mixing offsets and naive times: named, not a crash
    "utc_offset": (
        _set_cell(TRAFFIC, 6, 0, "2024-01-01T04:00:00+02:00"),
        TRAFFIC,
        "timestamp",
        "no_utc_offset",
        (6,),
    ),
    "year_beyond_nanoseconds": (
        _set_cell(TRAFFIC, 7, 0, "2999-01-01T00:00:00"),
        TRAFFIC,
        "timestamp",
        "parsable_as_timestamp",
        (7,),
    ),
    "empty_cell": (_set_cell(INFRA, 3, 2, ""), INFRA, "cpu_utilization", "not_nullable", (3,)),
    "infinity": (_set_cell(INFRA, 4, 3, "inf"), INFRA, "p95_latency_ms", "finite", (4,)),
    "empty_file": (_write_bytes(TRAFFIC, lambda _: b""), TRAFFIC, "-", "file_not_empty", ()),
    "header_only": (
        _write_bytes(TRAFFIC, lambda b: b.split(b"\n")[0] + b"\n"),
        TRAFFIC,
        "-",
        "has_rows",
        (),
    ),
    "missing_file": (lambda d: (d / INFRA).unlink(), INFRA, "-", "file_exists", ()),
    "not_utf8": (
        _write_bytes(INFRA, lambda b: b.replace(b"2024.01.0", "2024.01.\xe9".encode("latin-1"), 1)),
        INFRA,
        "-",
        "utf8_encoding",
        (2,),
    ),
    "truncated": (
        _write_bytes(INFRA, lambda b: b[: b.rstrip(b"\n").rfind(b",", 0, len(b) - 30)]),
        INFRA,
        "app_version",
        "not_nullable",
        (),
    ),
    "event_ends_before_start": (
        _edit_lines(EVENTS, lambda ls: [ls[0], _swap_start_end(ls[1]), *ls[2:]]),
        EVENTS,
        "start, end",
        "end_after_start",
        (2,),
    ),
    "unknown_sale_kind": (_set_cell(EVENTS, 3, 2, "mega_sale"), EVENTS, "kind", "isin", (3,)),
    "infrastructure_hour_missing": (
        _edit_lines(INFRA, lambda ls: [*ls[:10], *ls[11:]]),
        INFRA,
        "timestamp",
        "covers_every_traffic_hour",
        (11,),
    ),
}


def _swap_start_end(line: str) -> str:
    cells = line.rstrip("\n").split(",")
    cells[3], cells[4] = cells[4], cells[3]
    return ",".join(cells) + "\n"


def _find(failures: list[Failure], file: str, column: str, check: str) -> Failure:
    found = [
        f
        for f in failures
        if Path(f.file).name == file and f.column == column and f.check.startswith(check)
    ]
    assert found, f"no {check} failure on {file}:{column}; got {failures}"
    return found[0]


def test_example_tables_pass_and_are_written(small_raw: Config) -> None:
    assert validate.validate_and_log(small_raw) == 0
    out = Path(small_raw.paths.validated_dir)
    traffic = pd.read_parquet(out / "traffic.parquet")
    assert list(traffic.columns) == ["timestamp", "target"]
    assert traffic["timestamp"].diff().dropna().eq(pd.Timedelta(hours=1)).all()
    tables = {output.name for output in outputs.VALIDATED_TABLES.values()}
    assert {p.name for p in out.iterdir()} == tables | {outputs.VALIDATED_DATA.name}
    report = json.loads((Path(small_raw.paths.reports_dir) / "validation.json").read_text())
    assert report["passed"] is True
    assert report["failures"] == []


def test_the_json_report_describes_each_raw_file_for_the_pr_report(small_raw: Config) -> None:
    assert validate.validate_and_log(small_raw) == 0
    report = json.loads((Path(small_raw.paths.reports_dir) / "validation.json").read_text())
    traffic_file = small_raw.data.traffic_file
    described = report["files"][traffic_file]
    expected_md5 = hashlib.md5(Path(traffic_file).read_bytes(), usedforsecurity=False).hexdigest()
    assert described["md5"] == expected_md5  # the per-file hash DVC keeps in the .dir manifest
    assert described["rows"] == report["rows"][traffic_file]
    assert (described["first"], described["last"]) == ("2024-01-01 00:00", "2024-02-11 23:00")
    events = report["files"][small_raw.data.sale_events_file]
    assert events["first"] <= events["last"]
    assert set(report["files"]) == set(report["rows"])


def test_a_failed_table_is_described_without_the_hours_it_would_cover(small_raw: Config) -> None:
    traffic = Path(small_raw.data.traffic_file)
    lines = traffic.read_text(encoding="utf-8").splitlines(keepends=True)
    stamp, _ = lines[5].rstrip("\n").split(",")
    lines[5] = f"{stamp},-1\n"
    traffic.write_text("".join(lines), encoding="utf-8")
    assert validate.validate_and_log(small_raw) == 1
    report = json.loads((Path(small_raw.paths.reports_dir) / "validation.json").read_text())
    described = report["files"][str(traffic)]
    assert "first" not in described
    assert described["rows"] == len(lines) - 1


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_reported_and_nothing_is_overwritten(
    case: str, small_raw: Config, caplog: pytest.LogCaptureFixture
) -> None:
    mutate, file, column, check, lines = BAD_INPUTS[case]
    assert validate.validate_and_log(small_raw) == 0  # a previous good run
    out = Path(small_raw.paths.validated_dir)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    mutate(Path(small_raw.paths.raw_dir))
    assert validate.validate_and_log(small_raw) == 1

    result = validate.run(small_raw)
    failure = _find(result.failures, file, column, check)
    if lines:
        assert set(lines) <= set(failure.lines), failure
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    report_md = (Path(small_raw.paths.reports_dir) / "validation.md").read_text()
    assert f"| `{failure.file}` | `{column}` | {failure.check} |" in report_md
    assert "Traceback" not in caplog.text


def test_truncated_file_names_its_last_line(small_raw: Config) -> None:
    infra = Path(small_raw.paths.raw_dir) / INFRA
    text = infra.read_bytes()
    infra.write_bytes(text[: len(text) - 20])
    last_line = infra.read_bytes().count(b"\n") + 1
    failures = validate.run(small_raw).failures
    assert any(last_line in f.lines for f in failures if Path(f.file).name == INFRA), failures


def test_every_failure_is_reported_at_once(small_raw: Config) -> None:
    raw = Path(small_raw.paths.raw_dir)
    for case in ("negative_traffic", "event_ends_before_start", "float_in_int_column"):
        BAD_INPUTS[case][0](raw)
    files = {Path(f.file).name for f in validate.run(small_raw).failures}
    assert files == {TRAFFIC, EVENTS, INFRA}


def test_cli_exits_non_zero_without_traceback(small_raw: Config, tmp_path: Path) -> None:
    BAD_INPUTS["negative_traffic"][0](Path(small_raw.paths.raw_dir))
    raw = small_raw.paths.raw_dir
    overrides = [
        f"data.traffic_file={raw}/{TRAFFIC}",
        f"data.sale_events_file={raw}/{EVENTS}",
        f"data.infrastructure_file={raw}/{INFRA}",
        f"paths.reports_dir={tmp_path}/reports",
        f"paths.validated_dir={tmp_path}/validated",
    ]
    run = subprocess.run(
        [sys.executable, "-m", "traffic_forecast.pipeline.validate", *overrides],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert "validation failed" in run.stderr
    assert f"{tmp_path}/reports/validation.md" in run.stderr


def test_misspelt_setting_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="fill_gap"):
        load_config(["+data.fill_gap=zero"], params_file=None)
    with pytest.raises(ConfigError, match="fill_gaps"):
        load_config(["data.fill_gaps=linear"], params_file=None)


@needs_shared_data()
def test_bring_your_own_csv_reports_gaps_then_fills_them_when_asked(tmp_path: Path) -> None:
    paths = [f"paths.reports_dir={tmp_path}", f"paths.validated_dir={tmp_path}/v"]
    strict = load_config(["data=csv", *paths], params_file=None)
    gaps = _find(validate.run(strict).failures, BIKE_SHARING_CSV.name, "dteday", "no_gap_before")
    assert gaps.count > 50

    filled = load_config(["data=bike_sharing", *paths], params_file=None)
    result = validate.run(filled)
    assert result.passed, result.failures
    traffic = result.tables["traffic"]
    assert len(traffic) == 17_379 + 165
    assert "event__holiday" in traffic.columns
    assert "event__workingday" not in traffic.columns  # mostly 1: not a flag (conf/data/csv.yaml)
    assert any("165 missing hours filled" in note for note in result.notes)


def _gappy_csv(tmp_path: Path, method: str, drop: list[int]) -> Config:
    """Three weeks of a bring-your-own CSV without the hours ``drop``, read with ``method``."""
    stamps = pd.date_range("2024-01-01", periods=3 * 168, freq="h")
    frame = pd.DataFrame(
        {"ts": stamps.strftime("%Y-%m-%d %H:%M:%S"), "requests": np.arange(len(stamps)) + 100}
    )
    file = tmp_path / "mine.csv"
    frame.drop(index=drop).to_csv(file, index=False)
    overrides = [
        "data=csv",
        f"data.traffic_file={file}",
        "data.timestamp_column=ts",
        "data.hour_column=null",
        "data.target_column=requests",
        "data.event_columns=[]",
        f"data.fill_gaps={method}",
        f"paths.reports_dir={tmp_path}/reports",
        f"paths.validated_dir={tmp_path}/validated",
    ]
    return load_config(overrides, params_file=None)


@pytest.mark.parametrize("method", ["zero", "interpolate", "seasonal"])
def test_the_report_says_how_many_hours_were_filled_and_how(tmp_path: Path, method: str) -> None:
    cfg = _gappy_csv(tmp_path, method, [3, 4, 400])
    result = validate.run(cfg)
    assert result.passed, result.failures
    assert len(result.tables["traffic"]) == 3 * 168
    markdown = outputs.VALIDATION_MD.path(cfg.paths).read_text(encoding="utf-8")
    assert "3 missing hours filled" in markdown
    assert f"(data.fill_gaps={method}; requests of hours 2024-01-01 03:00 to 2024-01-17 16:00)" in (
        markdown
    )
    report = json.loads(outputs.VALIDATION_JSON.path(cfg.paths).read_text(encoding="utf-8"))
    expected = {
        "method": method,
        "hours": 3,
        "first": "2024-01-01 03:00",
        "last": "2024-01-17 16:00",
    }
    if method == "seasonal":
        expected["from_later_week"] = 2  # hours 3 and 4 of the first week: no week before
    assert report["files"][cfg.data.traffic_file]["filled"] == expected
    lineage = json.loads(outputs.VALIDATED_DATA.path(cfg.paths).read_text(encoding="utf-8"))
    assert lineage["files"][cfg.data.traffic_file]["filled"] == expected


def test_seasonal_filling_refuses_hours_no_week_holds_naming_the_rows(tmp_path: Path) -> None:
    cfg = _gappy_csv(tmp_path, "seasonal", [10, 10 + 168, 10 + 2 * 168])
    result = validate.run(cfg)
    assert not result.passed
    failure = _find(result.failures, "mine.csv", "ts", "same_hour_observed_in_another_week")
    # The line of the row after each missing hour, as the gap check names it.
    assert failure.lines == (12, 179, 346)
    assert failure.samples[0] == "2024-01-01 10:00 missing"
    markdown = outputs.VALIDATION_MD.path(cfg.paths).read_text(encoding="utf-8")
    assert "same_hour_observed_in_another_week" in markdown
    assert not outputs.VALIDATED_DATA.path(cfg.paths).exists()
