"""Per-component random generators derived from one seed."""

from __future__ import annotations

import zlib

import numpy as np


def component_rng(seed: int, component: str) -> np.random.Generator:
    """Return a generator private to one simulator component.

    Keying the stream by the component name (not by spawn order) means that
    adding or reordering components never shifts the draws of the others.

    Parameters
    ----------
    seed : int
        Non-negative simulation seed.
    component : str
        Stable component name, e.g. ``"flash_sale"``.

    Returns
    -------
    numpy.random.Generator
        Independent generator for that component.
    """
    key = zlib.crc32(component.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([seed, key]))


def uniform_int(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    """Draw an integer uniformly from an inclusive ``(low, high)`` range.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    bounds : tuple of int
        Inclusive lower and upper bound.

    Returns
    -------
    int
        The draw.
    """
    return int(rng.integers(bounds[0], bounds[1], endpoint=True))
