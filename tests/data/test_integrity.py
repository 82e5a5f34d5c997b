"""The release build's re-hash: every tracked file against the md5 its DVC file records."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from traffic_forecast.data.integrity import Mismatch, mismatches, object_path, recorded_outputs

FILES = {"traffic.csv": b"timestamp,sessions\n2024-01-01 00:00,5\n", "events.csv": b"kind\nsale\n"}


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _tracked_dir(root: Path) -> str:
    """``root/data/raw`` with FILES, and its .dir manifest in ``root/cache``; the manifest's md5."""
    raw = root / "data" / "raw"
    raw.mkdir(parents=True)
    for name, data in FILES.items():
        (raw / name).write_bytes(data)
    entries = [{"md5": _md5(data), "relpath": name} for name, data in sorted(FILES.items())]
    manifest = json.dumps(entries, sort_keys=True).encode()
    md5 = _md5(manifest) + ".dir"
    (root / "cache" / object_path(md5)).parent.mkdir(parents=True)
    (root / "cache" / object_path(md5)).write_bytes(manifest)
    return md5


def test_a_directory_as_recorded_has_no_mismatch(tmp_path: Path) -> None:
    md5 = _tracked_dir(tmp_path)
    assert mismatches("data/raw", md5, tmp_path, tmp_path / "cache") == []


def test_a_changed_file_is_named_with_both_md5s_and_its_object(tmp_path: Path) -> None:
    md5 = _tracked_dir(tmp_path)
    corrupted = FILES["traffic.csv"].replace(b"5", b"6")
    (tmp_path / "data" / "raw" / "traffic.csv").write_bytes(corrupted)
    found = mismatches("data/raw", md5, tmp_path, tmp_path / "cache")
    expected = _md5(FILES["traffic.csv"])
    assert found == [Mismatch("data/raw/traffic.csv", expected, _md5(corrupted))]
    assert found[0].describe() == (
        f"data/raw/traffic.csv hashes to {_md5(corrupted)}, not {expected} "
        f"(object files/md5/{expected[:2]}/{expected[2:]})"
    )


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    md5 = _tracked_dir(tmp_path)
    (tmp_path / "data" / "raw" / "events.csv").unlink()
    found = mismatches("data/raw", md5, tmp_path, tmp_path / "cache")
    assert [(bad.path, bad.found) for bad in found] == [("data/raw/events.csv", None)]
    assert "data/raw/events.csv is missing" in found[0].describe()


def test_an_altered_manifest_is_not_trusted_to_vouch_for_the_files(tmp_path: Path) -> None:
    md5 = _tracked_dir(tmp_path)
    manifest = tmp_path / "cache" / object_path(md5)
    manifest.write_bytes(manifest.read_bytes().replace(b"events", b"evenTs"))
    found = mismatches("data/raw", md5, tmp_path, tmp_path / "cache")
    assert [bad.path for bad in found] == ["data/raw (its .dir manifest)"]
    assert f"not {md5.removesuffix('.dir')} (object {object_path(md5)})" in found[0].describe()


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"abc", []), (b"abd", ["model.pkl"]), (None, ["model.pkl"])],
    ids=["as-recorded", "changed", "missing"],
)
def test_a_tracked_file_is_compared_directly(
    tmp_path: Path, content: bytes | None, expected: list[str]
) -> None:
    if content is not None:
        (tmp_path / "model.pkl").write_bytes(content)
    found = mismatches("model.pkl", _md5(b"abc"), tmp_path, tmp_path / "cache")
    assert [bad.path for bad in found] == expected


def test_recorded_outputs_reads_a_dvc_file(tmp_path: Path) -> None:
    dvc_file = tmp_path / "data.dvc"
    dvc_file.write_text(
        "outs:\n- md5: 9da2806bdd3b301b11c5fd6f0dfb97be.dir\n  size: 1\n  nfiles: 3\n"
        "  hash: md5\n  path: data/raw\n",
        encoding="utf-8",
    )
    assert recorded_outputs(dvc_file) == [("data/raw", "9da2806bdd3b301b11c5fd6f0dfb97be.dir")]
