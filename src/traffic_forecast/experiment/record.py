"""What an experiment is: its arms, mode and course, kept in the deploy state (``state.json``).

Plain data, shared by the commands that run an experiment (start, guard, stop) and the analysis
that decides it: no I/O here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

from traffic_forecast.core.config import ExperimentConfig, GuardrailConfig

CHAMPION = "champion"
CHALLENGER = "challenger"
ARMS = (CHAMPION, CHALLENGER)

RUNNING, STOPPED, ENDED = "running", "stopped", "ended"  # ended: a guardrail breach


@dataclass(frozen=True)
class Arm:
    """One arm: the colour that serves it, its Bento and model, and the commit it was built from."""

    colour: str
    bento: str
    model: str
    git_commit: str = ""


@dataclass
class Experiment:
    """One experiment, from ``experiment start`` to ``stop`` or a guardrail's breach."""

    id: str
    mode: str  # shadow | split
    share: float  # split: the share of clients the challenger answers
    client_header: str
    champion: Arm
    challenger: Arm
    started_at: float  # epoch seconds
    status: str = RUNNING
    ended_at: float | None = None
    end_reason: str | None = None
    breach: dict[str, Any] | None = None  # the guardrail check that ended it
    checks: int = 0  # guardrail checks passed
    last_check: str | None = None  # what the last one measured
    pull_request: int | None = None  # the challenger's pull request: where the analysis is posted
    issue: int | None = None  # else a tracking issue (else the challenger's commit)
    # The settings it started with (conf/experiment): declared before any data, they decide it.
    settings: dict[str, Any] = field(default_factory=dict)

    def config(self, default: ExperimentConfig) -> ExperimentConfig:
        """The settings declared at the start (``default`` for a record without them)."""
        if not self.settings:
            return default
        declared = dict(self.settings)
        guardrails = GuardrailConfig(**declared.pop("guardrails", {}))
        return dataclasses.replace(default, **declared, guardrails=guardrails)

    @property
    def running(self) -> bool:
        """True until stopped or ended by a guardrail."""
        return self.status == RUNNING

    def arm(self, name: str) -> Arm:
        """The champion or the challenger."""
        return self.champion if name == CHAMPION else self.challenger

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``from_json`` reads it back)."""
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Experiment:
        """The experiment ``as_json`` wrote."""
        fields = dict(raw)
        fields["champion"] = Arm(**raw["champion"])
        fields["challenger"] = Arm(**raw["challenger"])
        return cls(**fields)
