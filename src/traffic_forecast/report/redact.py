"""What the public report must never print: remote URLs, secrets in the environment, runner paths.

The sections print no such value on purpose; this is the last line of defence for text that
comes from elsewhere (error messages, validation notes, config values).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Environment variables whose value is a secret by their name (AWS_SECRET_ACCESS_KEY,
# REPO_TOKEN, AZURE_STORAGE_KEY, …); shorter values are too likely to be ordinary words.
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|_KEY", re.IGNORECASE)
MIN_LENGTH = 8
HIDDEN = "***"
REMOTE_URL = "<DVC remote URL>"


def private_values(
    env: Mapping[str, str], remote: Mapping[str, Any] | None, cwd: Path, home: Path
) -> dict[str, str]:
    """Each value the report must not print, with what to print instead."""
    private: dict[str, str] = {}
    for path, short in ((home, "~"), (cwd, ".")):  # cwd after home: it is usually under it
        if len(path.parts) > 1:
            private[str(path)] = short
    for key in ("configured_url", "url"):
        url = str((remote or {}).get(key) or "")
        if len(url) >= MIN_LENGTH:
            private[url] = REMOTE_URL
    for name, value in env.items():
        if SECRET_NAME.search(name) and len(value) >= MIN_LENGTH:
            private[value] = HIDDEN
    return private


def redact(text: str, private: Mapping[str, str]) -> str:
    """``text`` with every private value replaced, the longest first (a path before its parent)."""
    for value in sorted(private, key=len, reverse=True):
        text = text.replace(value, private[value])
    return text


def redact_json(value: Any, private: Mapping[str, str]) -> Any:
    """:func:`redact` on every string of a JSON-like value."""
    if isinstance(value, str):
        return redact(value, private)
    if isinstance(value, dict):
        return {key: redact_json(item, private) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_json(item, private) for item in value]
    return value
