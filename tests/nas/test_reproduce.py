"""nas.reproduce: verdict rules against hand-made intervals, the bootstrap against a closed form, claim
selection, resumable outputs, and the protocols' code on small synthetic data (the full trends are the
slow end-to-end run at the bottom)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nas.cli import main
from nas.reproduce import CLAIMS, Context, run_claims, select_claims
from nas.reproduce.registry import Claim, Measurement, bootstrap_ci, verdict


def _claim(expect="positive", threshold=0.0):
    return Claim("t.x", "paper", "sec", "statement", "protocol", expect, threshold, lambda ctx: None)


@pytest.mark.parametrize("expect, threshold, lo, hi, n, expected", [
    ("positive", 0.0, 0.1, 0.5, 5, "replicated"),
    ("positive", 0.0, -0.5, -0.1, 5, "not replicated"),
    ("positive", 0.0, -0.1, 0.3, 5, "inconclusive"),
    ("negative", 0.0, -0.5, -0.1, 5, "replicated"),
    ("negative", 0.0, 0.1, 0.5, 5, "not replicated"),
    ("positive", -0.01, -0.005, 0.02, 5, "replicated"),  # non-inferiority: above the -1 point margin
    ("positive", -0.01, -0.05, -0.02, 5, "not replicated"),
    ("positive", 0.0, 0.1, 0.5, 2, "inconclusive"),  # too few samples
    ("positive", 0.0, float("nan"), float("nan"), 9, "inconclusive"),
])
def test_verdict_follows_the_interval(expect, threshold, lo, hi, n, expected):
    m = Measurement((lo + hi) / 2, lo, hi, n, "effect")
    v, why = verdict(_claim(expect, threshold), m)
    assert v == expected and why


def test_a_failed_premise_makes_any_interval_inconclusive():
    m = Measurement(0.3, 0.1, 0.5, 5, "effect", inconclusive_because="nothing trained above chance")
    v, why = verdict(_claim("positive"), m)
    assert v == "inconclusive" and why.startswith("nothing trained above chance")


def test_bootstrap_of_a_mean_matches_the_normal_interval():
    x = np.random.default_rng(0).normal(1.0, 2.0, size=400)
    value, lo, hi = bootstrap_ci(x, resamples=4000)
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    assert value == pytest.approx(x.mean())
    assert lo == pytest.approx(x.mean() - half, abs=0.25 * half) and hi == pytest.approx(x.mean() + half, abs=0.25 * half)
    v, lo, hi = bootstrap_ci([0.3, 0.3, 0.3, 0.3])
    assert v == lo == hi == pytest.approx(0.3)
    assert all(math.isnan(b) for b in bootstrap_ci([1.0, 2.0])[1:])


def test_select_claims_by_paper_prefix_and_key():
    assert select_claims(["all"]) == list(CLAIMS)
    assert select_claims(["003"]) == [k for k in CLAIMS if k.startswith("003.")]
    assert select_claims(["004.high_kappa_w_fails", "000"])[0] == "004.high_kappa_w_fails"
    with pytest.raises(KeyError, match="valid"):
        select_claims(["005"])
    papers = {k.split(".")[0] for k in CLAIMS}
    assert papers == {"000", "001", "002", "003", "004"}
    assert [k[:3] for k in CLAIMS] == sorted(k[:3] for k in CLAIMS)  # registry order: by paper
    for key, c in CLAIMS.items():  # each claim lives in its paper's module
        assert c.fn.__module__.endswith(f"protocols.p{key[:3]}")


def test_run_claims_writes_every_output_and_resumes(tmp_path, monkeypatch):
    calls = []

    def fn(ctx):
        calls.append(1)
        return Measurement(0.4, 0.2, 0.6, 5, "toy effect", samples=[0.2, 0.4, 0.6, 0.3, 0.5],
                           figure=lambda ax: ax.plot([1, 2], [3, 4]))

    monkeypatch.setitem(CLAIMS, "zz.toy", Claim("zz.toy", "toy paper", "Sec. 1", "toys rise", "a toy", "positive",
                                                0.0, fn))
    ctx = Context.make("synthetic", 3, True)
    rows = run_claims(["zz.toy"], ctx, tmp_path)
    assert rows[0]["verdict"] == "replicated" and rows[0]["n"] == 5
    for name in ("reproduce.csv", "reproduce.json", "reproduce.html", "claims/zz.toy.json", "figures/zz.toy.png"):
        assert (tmp_path / name).exists(), name
    assert "data:image/png;base64," in (tmp_path / "reproduce.html").read_text()
    assert json.loads((tmp_path / "reproduce.json").read_text())[0]["claim"] == "zz.toy"
    run_claims(["zz.toy"], ctx, tmp_path)  # same settings: read back, not run again
    assert len(calls) == 1
    run_claims(["zz.toy"], Context.make("synthetic", 4, True), tmp_path)  # other settings: run again
    assert len(calls) == 2


def test_a_failing_protocol_is_inconclusive_not_a_crash(tmp_path, monkeypatch):
    def fn(ctx):
        raise RuntimeError("boom")

    monkeypatch.setitem(CLAIMS, "zz.bad", Claim("zz.bad", "p", "s", "st", "pr", "positive", 0.0, fn))
    row = run_claims(["zz.bad"], Context.make("synthetic", 3, True), tmp_path)[0]
    assert row["verdict"] == "inconclusive" and "boom" in row["why"]
    # the next run retries a failed protocol instead of reading the failure back
    monkeypatch.setitem(CLAIMS, "zz.bad", Claim("zz.bad", "p", "s", "st", "pr", "positive", 0.0,
                                                lambda ctx: Measurement(0.4, 0.2, 0.6, 5, "fixed")))
    row = run_claims(["zz.bad"], Context.make("synthetic", 3, True), tmp_path)[0]
    assert row["verdict"] == "replicated" and row["n"] == 5


FAST = ["000.norms_fall_with_depth", "000.cv_rises_with_depth", "000.early_noise_more_anisotropic",
        "002.global_std_decreases", "003.gaussianity_rises_with_batch", "003.berry_esseen_shrinks_with_batch",
        "004.batch_dissonance_rises_with_batch"]


def test_protocols_run_on_small_synthetic_data(tmp_path):
    ctx = Context.make("synthetic", 3, True)
    rows = {r["claim"]: r for r in run_claims(FAST, ctx, tmp_path)}
    for key in FAST:
        r = rows[key]
        assert r["n"] == 3, (key, r["why"])
        assert r["verdict"] in ("replicated", "not replicated", "inconclusive")
        assert r["ci_low"] is not None and r["ci_low"] <= r["effect"] <= r["ci_high"], key
        assert (tmp_path / r["figure"]).exists()
    for key in ("000.norms_fall_with_depth", "000.cv_rises_with_depth", "002.global_std_decreases",
                "004.batch_dissonance_rises_with_batch"):
        assert -1 <= rows[key]["effect"] <= 1  # mean rank correlations
    assert -100 <= rows["003.gaussianity_rises_with_batch"]["effect"] <= 100  # percentage points


def test_cli_reproduce_list_and_bad_claim(capsys):
    assert main(["reproduce", "--list", "001"]) == 0
    out = capsys.readouterr().out
    assert "001.dimension_wise_power_law" in out and "protocol:" in out
    assert main(["reproduce", "nope"]) == 2
    assert "no claim 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_reproduce_all_quick_end_to_end(tmp_path, capsys):
    assert main(["reproduce", "all", "--quick", "--dataset", "mnist5k", "--out", str(tmp_path), "--no-progress"]) == 0
    rows = json.loads((tmp_path / "reproduce.json").read_text())
    assert [r["claim"] for r in rows] == list(CLAIMS)
    assert all(r["verdict"] in ("replicated", "not replicated", "inconclusive") for r in rows)
    assert sum(r["seconds"] for r in rows) < 20 * 60


def test_training_protocols_compare_each_method_at_its_own_best(tmp_path):
    # the CReLU claim picks each method's best learning rate per (depth, seed); the GAN claim compares GAN with
    # the best of the other transforms under AdamW; both effects are the mean of those per-seed differences
    ctx = Context.make("synthetic", 3, True)
    rows = {r["claim"]: r for r in run_claims(["004.crelu_looks_linear_trains_deep", "002.gan_not_worse"], ctx,
                                              tmp_path)}
    crelu = rows["004.crelu_looks_linear_trains_deep"]
    assert crelu["n"] == 3, crelu["why"]
    for depth, a_ll, a_relu, lr_ll, lr_relu in crelu["details"]["rows"]:
        assert depth == 50 and lr_ll in (0.001, 0.003, 0.01) and lr_relu in (0.001, 0.003, 0.01)
        assert 0.0 <= a_ll <= 1.0 and 0.0 <= a_relu <= 1.0
    diffs = [r[1] - r[2] for r in crelu["details"]["rows"]]
    assert crelu["samples"] == pytest.approx(diffs) and crelu["effect"] == pytest.approx(np.mean(diffs))
    gan = rows["002.gan_not_worse"]
    acc = gan["details"]["accuracy"]["adamw"]
    assert set(acc) == {"none", "gan", "gc", "zscore"} and all(len(v) == 3 for v in acc.values())
    margins = [acc["gan"][i] - max(acc[t][i] for t in ("none", "gc", "zscore")) for i in range(3)]
    assert gan["samples"] == pytest.approx(margins) and gan["effect"] == pytest.approx(np.mean(margins))


def test_population_protocols_measure_every_config_once_and_resume(tmp_path):
    keys = ["004.high_rank_input_fails", "004.low_confusion_trains_faster", "004.high_kappa_w_fails"]
    ctx = Context.make("synthetic", 3, True, population=5)
    first = {r["claim"]: r for r in run_claims(keys, ctx, tmp_path / "a")}
    saved = tmp_path / "a" / "population-synthetic-2ep.jsonl"
    lines = saved.read_text().splitlines()
    assert len(lines) == 5
    rows = [json.loads(line) for line in lines]
    assert all("converged" in r and 0.0 <= r["acc"] <= 1.0 for r in rows)
    assert len({json.dumps(r["config"], sort_keys=True) for r in rows}) == 5
    for key in keys:
        assert "protocol failed" not in first[key]["why"], first[key]["why"]
    assert first["004.high_kappa_w_fails"]["n"] == sum(isinstance(r.get("train_kappa_w"), float) for r in rows)
    # a new run in another folder that holds the same population file reads it instead of training again
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / saved.name).write_text(saved.read_text())
    again = {r["claim"]: r for r in run_claims(keys, Context.make("synthetic", 3, True, population=5), tmp_path / "b")}
    assert (tmp_path / "b" / saved.name).read_text().splitlines() == lines
    for key in keys:
        assert again[key]["n"] == first[key]["n"]
        assert again[key]["effect"] == first[key]["effect"] or (again[key]["effect"] is None is first[key]["effect"])
