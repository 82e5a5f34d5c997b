"""Re-hash what a DVC file tracks and compare it with the md5s it records: corruption, named.

DVC trusts a cloud remote by default: a pulled object is not re-hashed, and its expected md5 is
written to DVC's state database, so ``dvc status`` and ``dvc data status`` report a corrupted
download as up to date. The remote's ``verify`` option re-hashes downloads, but a corrupted
object then fails the pull as "Checkout failed for following targets: data/raw" without naming
the file, and objects already in the local cache are never checked. So the release build
re-hashes here, with hashlib, never through DVC's state: the ``.dir`` manifest against the md5
the DVC file records, then every file against the manifest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

DIR_SUFFIX = ".dir"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Mismatch:
    """A tracked file whose bytes are not the ones its DVC file records."""

    path: str  # as a person finds it: data/raw/traffic.csv
    expected: str  # the md5 the DVC file, or the directory's .dir manifest, records
    found: str | None  # what the bytes hash to; None when the file is not there

    @property
    def object(self) -> str:
        """Where DVC 3 keeps this version, under the cache or the remote's root."""
        return object_path(self.expected)

    def describe(self) -> str:
        """One line: the file, what it hashes to, what was recorded and the object it came from."""
        got = "is missing" if self.found is None else f"hashes to {self.found}"
        recorded = self.expected.removesuffix(DIR_SUFFIX)  # a manifest's bytes hash to the md5
        return f"{self.path} {got}, not {recorded} (object {self.object})"


def object_path(md5: str) -> str:
    """``files/md5/<first 2 hex>/<rest>``: an object's path in a DVC 3 cache or remote."""
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def file_md5(path: Path) -> str | None:
    """The md5 of ``path``'s bytes, read in chunks; None when there is no such file."""
    if not path.is_file():
        return None
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def recorded_outputs(dvc_file: Path) -> list[tuple[str, str]]:
    """``(path, md5)`` of each output a ``.dvc`` file records (a directory's md5 ends ``.dir``)."""
    outs: list[dict[str, object]] = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["outs"]
    return [(str(out["path"]), str(out["md5"])) for out in outs]


def mismatches(output: str, md5: str, root: Path, cache: Path) -> list[Mismatch]:
    """Every file of ``output`` (a file or a directory under ``root``) not hashing to ``md5``.

    A directory's per-file md5s come from its ``.dir`` manifest in ``cache``, which must itself
    hash to ``md5``: a manifest altered on the remote could otherwise vouch for altered files.
    """
    if not md5.endswith(DIR_SUFFIX):
        found = file_md5(root / output)
        return [] if found == md5 else [Mismatch(output, md5, found)]
    manifest = cache / object_path(md5)
    found = file_md5(manifest)
    if found != md5.removesuffix(DIR_SUFFIX):
        return [Mismatch(f"{output} (its .dir manifest)", md5, found)]
    entries: list[dict[str, str]] = json.loads(manifest.read_bytes())
    problems = []
    for entry in entries:
        found = file_md5(root / output / entry["relpath"])
        if found != entry["md5"]:
            problems.append(Mismatch(f"{output}/{entry['relpath']}", entry["md5"], found))
    return problems
