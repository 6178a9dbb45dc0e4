"""The claims registry: one protocol per claim of the source papers, and how a verdict is reached.

A protocol is a function ``fn(ctx) -> Measurement`` registered with :func:`claim`; it measures one
effect whose sign the claim predicts (``expect="positive"`` or ``"negative"``, optionally beyond a
``threshold``) over several seeds or configs, with a confidence interval. :func:`verdict` turns the
interval into *replicated* (the whole CI on the predicted side), *not replicated* (the whole CI on the
other side) or *inconclusive* (the CI straddles the threshold, or too few samples), and says why.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

__all__ = ["Claim", "Measurement", "CLAIMS", "claim", "verdict", "bootstrap_ci", "VERDICTS"]

VERDICTS = ("replicated", "not replicated", "inconclusive")
#: Fewest independent samples (seeds or configs) a verdict other than "inconclusive" needs.
MIN_N = 3


@dataclasses.dataclass
class Measurement:
    """What a protocol measured.

    Attributes:
        effect: the effect size (its definition in ``effect_name``), e.g. a mean Spearman rho over seeds.
        ci_low, ci_high: its confidence interval (bootstrap percentile over the samples, or exact).
        n: independent samples (seeds, or configs for population claims).
        effect_name: what ``effect`` is, in words.
        samples: the per-sample values the effect and its CI come from.
        figure: ``draw(ax)`` plotting the evidence on a matplotlib axis (None: no figure).
        details: anything else worth keeping (per-layer values, per-seed numbers, ...), JSON-able.
        note: a remark on the measurement (what was skipped, a degenerate case).
        inconclusive_because: set when the protocol's premise failed (e.g. no compared network trained above
            chance): the verdict is then inconclusive whatever the interval, with this reason.
    """

    effect: float
    ci_low: float
    ci_high: float
    n: int
    effect_name: str
    samples: list[float] = dataclasses.field(default_factory=list)
    figure: Callable[[Any], None] | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    note: str = ""
    inconclusive_because: str = ""


@dataclasses.dataclass(frozen=True)
class Claim:
    """A registered claim.

    Attributes:
        key: registry key, ``<paper>.<short name>`` (paper 000-004; 004 is the thesis).
        paper: the paper, in words; section: where the claim is made.
        statement: the claim, as testable words.
        protocol: how it is measured here (small nets, which data, how many seeds/steps).
        expect: the predicted sign of the effect beyond ``threshold``: ``"positive"`` or ``"negative"``.
        threshold: the effect the claim must exceed (0 for a sign; a non-inferiority margin otherwise).
        fn: the protocol, ``fn(ctx) -> Measurement``.
    """

    key: str
    paper: str
    section: str
    statement: str
    protocol: str
    expect: str
    threshold: float
    fn: Callable[[Any], Measurement]


CLAIMS: dict[str, Claim] = {}


def claim(key: str, *, paper: str, section: str, statement: str, protocol: str, expect: str,
          threshold: float = 0.0) -> Callable[[Callable[[Any], Measurement]], Callable[[Any], Measurement]]:
    """Register ``fn`` as the protocol of claim ``key`` (decorator)."""
    if expect not in ("positive", "negative"):
        raise ValueError(f"expect must be 'positive' or 'negative', got {expect!r}")

    def register(fn: Callable[[Any], Measurement]) -> Callable[[Any], Measurement]:
        if key in CLAIMS:
            raise ValueError(f"claim {key!r} is already registered")
        CLAIMS[key] = Claim(key, paper, section, statement, protocol, expect, float(threshold), fn)
        return fn

    return register


def verdict(c: Claim, m: Measurement) -> tuple[str, str]:
    """``(verdict, why)`` of measurement ``m`` of claim ``c`` (see the module docstring)."""
    side = "above" if c.expect == "positive" else "below"
    t = c.threshold
    if m.n < MIN_N or not (np.isfinite(m.ci_low) and np.isfinite(m.ci_high)):
        return "inconclusive", f"n = {m.n} (at least {MIN_N} needed) or an undefined interval"
    lo, hi = m.ci_low, m.ci_high
    if m.inconclusive_because:
        return "inconclusive", f"{m.inconclusive_because} (CI [{lo:+.3g}, {hi:+.3g}])"
    if (c.expect == "positive" and lo > t) or (c.expect == "negative" and hi < t):
        return "replicated", f"the whole CI [{lo:+.3g}, {hi:+.3g}] is {side} {t:g}, as claimed"
    if (c.expect == "positive" and hi < t) or (c.expect == "negative" and lo > t):
        other = "below" if side == "above" else "above"
        return "not replicated", f"the whole CI [{lo:+.3g}, {hi:+.3g}] is {other} {t:g}: the opposite of the claim"
    return "inconclusive", f"the CI [{lo:+.3g}, {hi:+.3g}] contains {t:g}"


def bootstrap_ci(samples: Any, statistic: Callable[..., float] = np.mean, *, paired: bool = False,
                 confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """``(statistic, low, high)``: the statistic of ``samples`` and its bootstrap percentile interval.

    ``samples`` is one sequence, or with ``paired=True`` a tuple of equally long sequences resampled
    together (e.g. x and y of a correlation). Resamples whose statistic is undefined (a constant
    column in a small resample of a rank correlation) are dropped rather than poisoning the interval
    (``scipy.stats.bootstrap`` returns NaN bounds then); NaN bounds for fewer than 3 samples or when more
    than half of the resamples are undefined.
    """
    import warnings

    data = [np.asarray(s, dtype=np.float64) for s in samples] if paired else [np.asarray(samples, float)]
    n = len(data[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(statistic(*data))
        if n < 3:
            return value, float("nan"), float("nan")
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(resamples, n))
        stats_ = np.array([statistic(*(d[i] for d in data)) for i in idx], dtype=np.float64)
    ok = stats_[np.isfinite(stats_)]
    if len(ok) < resamples / 2:
        return value, float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    return value, float(np.quantile(ok, alpha)), float(np.quantile(ok, 1 - alpha))
