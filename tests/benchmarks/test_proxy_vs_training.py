"""Tests of benchmarks/proxy_vs_training.py and benchmarks/search_efficiency.py.

Both scripts end to end (in subprocesses and in process) on the ``synthetic`` dataset with tiny networks,
and search_efficiency on a hand-made table whose answers are known in closed form. The lab's logic
(nas.lab: keys, population, build, correlations) is tested in tests/nas/lab.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nas.lab.correlations import default_objectives
from nas.lab.keys import COMBINED
from nas.lab.population import sample_configs

ROOT = Path(__file__).resolve().parents[2]
PVT_SCRIPT = ROOT / "benchmarks" / "proxy_vs_training.py"
SE_SCRIPT = ROOT / "benchmarks" / "search_efficiency.py"
BOUNDS = {"blocks": [1, 1], "width": [8, 8], "batch_size": [32, 64]}
# the default objectives, thesis metrics, peers and a noise metric: every kind, in a few seconds
METRICS = "confusion,diversity,kappa_w,kappa_x,rank_input,synflow,snip,naswot,params,sgn_gaussianity"


def _load(name: str, path: Path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


pvt = _load("proxy_vs_training", PVT_SCRIPT)
se = _load("search_efficiency", SE_SCRIPT)

from search_spaces import get_space  # noqa: E402


def run(script: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


# ------------------------------------------------------------------------------------------------------
# search_efficiency: closed forms
# ------------------------------------------------------------------------------------------------------


def test_random_expectation_matches_enumeration():
    n, good = 6, 2
    orders = itertools.permutations([1] * good + [0] * (n - good))
    positions = [next(i + 1 for i, g in enumerate(p) if g) for p in orders]
    mean, sd = se.random_expectation(n, good)
    assert mean == pytest.approx(np.mean(positions)) == pytest.approx(7 / 3)
    assert sd == pytest.approx(np.std(positions))


def _hand_table(n: int = 20) -> pd.DataFrame:
    acc = np.linspace(0.1, 0.9, n)
    naswot = acc.copy()
    naswot[-1] = np.nan  # the best config has no value: ranked last
    return pd.DataFrame({
        "index": range(n), "val_best_acc": acc,
        "synflow": acc,  # maximized, perfect
        "params": -acc,  # maximized, perfectly wrong
        "flops": np.ones(n),  # constant: every order is a random tie-break
        "train_loss_last": -acc,  # minimized, perfect
        "naswot": naswot,
        "confusion": -acc, "diversity": -acc, "kappa_w": -acc,  # the default objectives, perfect
        "rank_input": np.where(acc == acc.max(), 0.5, 0.0),  # the best config is infeasible (rank_input > 0.15)
        "loss_drop": np.ones(n),
        # the search's current default objectives, perfect (their mean rank is COMBINED)
        **{o.key: (acc if o.direction == "maximize" else -acc) for o in default_objectives()},
    })


def test_search_efficiency_known_answers(tmp_path):
    df = _hand_table(20)
    sim = se.simulate(df, top=0.05, seeds=20)
    assert (sim["n"], sim["k"], sim["good"]) == (20, 1, 1)
    res = {name: runs for name, (_, runs) in sim["results"].items()}
    assert res["synflow"] == [1] * 20 and res["train_loss_last"] == [1] * 20
    assert res["params"] == [20] * 20 and res["naswot"] == [20] * 20
    assert res[se.OLD] == [1] * 20 and res[COMBINED] == [1] * 20
    assert res[se.OLD_CONSTRAINED] == [20] * 20  # the only infeasible config is the best: trained last
    assert res["flops"] == res[se.RANDOM]  # constant proxy = the shared random tie-break
    assert sim["random_expected"][0] == pytest.approx(21 / 2)
    # top 10 %: two top configs; the reversed proxy reaches the second best at position n - 1
    sim10 = se.simulate(df, top=0.10, seeds=3)
    assert sim10["k"] == 2 and sim10["results"]["params"][1] == [19] * 3
    # the simulated random order converges to the closed form
    big = se.simulate(df[["val_best_acc", "synflow"]], top=0.05, seeds=4000)
    assert np.mean(big["results"][se.RANDOM][1]) == pytest.approx(10.5, abs=0.3)
    assert np.std(big["results"][se.RANDOM][1]) == pytest.approx(big["random_expected"][1], rel=0.05)
    # ties at the boundary are all top
    tied = pd.DataFrame({"val_best_acc": [0.5, 0.9, 0.9, 0.1], "synflow": [1.0, 2.0, 3.0, 4.0]})
    assert se.top_mask(tied["val_best_acc"].to_numpy(), 0.05)[0].tolist() == [False, True, True, False]

    path = tmp_path / "hand.csv"
    df.to_csv(path, index=False)
    out = run(SE_SCRIPT, "--table", str(path), "--seeds", "20").stdout
    assert "closed form (n+1)/(K+1) = 10.50" in out
    assert "caution: 1 top config(s) only" in out  # k = 1: each proxy's figure is one draw
    assert "caution" not in se.format_summary(se.simulate(df, top=0.25, seeds=2), 0.25, 2)  # 5 top configs
    table = efficiency_table(out)
    assert table["synflow"][:2] == (1.0, 0.0) and table["params"][:2] == (20.0, 0.0)
    assert table[se.OLD][:2] == (1.0, 0.0) and se.RANDOM in table
    means = [v[0] for v in table.values()]
    assert means == sorted(means)


def efficiency_table(stdout: str) -> dict[str, tuple[float, float, str]]:
    """strategy -> (mean, sd, kind) of search_efficiency's printed table, in printed order."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("strategy "))
    out = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        kind, mean, sd = line[26:].split()[:3]
        out[line[:26].strip()] = (float(mean), float(sd), kind)
    return out


# ------------------------------------------------------------------------------------------------------
# End to end on synthetic data
# ------------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_end_to_end_resume_and_search_efficiency(tmp_path, capsys):
    out = tmp_path / "pvt.csv"
    args = ["--space", "resnet_cifar", "--dataset", "synthetic", "--archs", "4", "--epochs", "1", "--repeat", "2",
            "--early-steps", "3", "--long-steps", "5", "--bounds", json.dumps(BOUNDS), "--metrics", METRICS,
            "--seed", "0", "--out", str(out), "--no-progress", "--data-dir", str(tmp_path)]
    first = run(PVT_SCRIPT, *args).stdout
    assert "0 already done, 4 to score and train, 2 repeat training(s) to run" in first
    for text in ("Oriented Kendall tau", "gradnas_mean_rank", "train_loss_last@5", "noise ceiling", "configs: 4"):
        assert text in first

    df = pd.read_csv(out)
    assert df["index"].tolist() == [0, 1, 2, 3] and df["seed"].tolist() == [0, 1, 2, 3]
    assert df["main_done"].all() and df["eval_status"].isin(["ok", "partial", "failed"]).all()
    configs = [json.loads(c) for c in df["config"]]
    assert configs == sample_configs(get_space("resnet_cifar", **BOUNDS), 4, seed=0)
    assert df["settings"].nunique() == 1 and json.loads(df["settings"][0])["early_steps"] == 3
    assert ((df["val_best_acc"] >= 0) & (df["val_best_acc"] <= 1)).all()
    assert df["val_converged"].isin([True, False]).all()
    assert df["rep_best_acc"][:2].notna().all() and df["rep_best_acc"][2:].isna().all()
    assert df["rep_seed"][:2].tolist() == [100003, 100004]
    ok = df["eval_status"] != "failed"
    for key in ("confusion", "kappa_w@early", "synflow", "train_loss_last", "loss_drop"):
        assert key in df.columns
    assert df.loc[ok, "train_loss_last"].notna().all()
    for key in ("train_loss_last@5", "loss_early@5", "loss_drop@5", "train_kappa_w@5"):
        assert key in df.columns
    partial = df["eval_status"] == "partial"
    for text in df.loc[partial, "metric_errors"]:
        assert json.loads(text)  # which metric, and why
    assert (df["time_eval"] > 0).all() and (df["time_train"] > 0).all()

    # the rerun (in process: nothing is left to train) skips every finished job and prints the same report
    before = out.read_bytes()
    capsys.readouterr()
    assert pvt.main(args) == 0
    again = capsys.readouterr().out
    assert "4 already done, 0 to score and train, 0 repeat training(s) to run" in again
    assert out.read_bytes() == before
    assert again.split("configs: 4", 1)[1] == first.split("configs: 4", 1)[1]

    other = [a if a != "3" else "4" for a in args]  # --early-steps 4: other settings, refused
    with pytest.raises(SystemExit, match=r"other settings \(early_steps\)"):
        pvt.main(other)
    assert out.read_bytes() == before

    capsys.readouterr()
    assert se.main(["--table", str(out), "--seeds", "5"]) == 0
    eff = capsys.readouterr().out
    assert "4 configs with a trained accuracy" in eff and "closed form (n+1)/(K+1) = 2.50" in eff
    table = efficiency_table(eff)
    assert {se.RANDOM, COMBINED, "synflow", "train_loss_last@5"} <= set(table)
    assert all(1.0 <= mean <= 4.0 for mean, _, _ in table.values())


def test_long_metrics_and_filling_metrics_added_later(tmp_path, capsys):
    """--long-metrics stores every metric after the long run; a metric added later is filled into the
    finished rows with exactly the values a run that had it from the start measures."""
    def args(out, metrics):
        return ["--space", "resnet_cifar", "--dataset", "synthetic", "--archs", "2", "--epochs", "1", "--repeat", "0",
                "--early-steps", "3", "--long-steps", "5", "--long-metrics", "--bounds", json.dumps(BOUNDS),
                "--metrics", metrics, "--seed", "0", "--out", str(out), "--no-progress", "--data-dir", str(tmp_path)]

    grown, fresh = tmp_path / "grown.csv", tmp_path / "fresh.csv"
    assert pvt.main(args(grown, "params,kappa_w")) == 0
    first = pd.read_csv(grown)
    assert {"kappa_w", "kappa_w@early", "kappa_w@5", "loss_curve@5"} <= set(first.columns)
    assert all(len(json.loads(c)) == 5 for c in first["loss_curve@5"])
    capsys.readouterr()
    assert pvt.main(args(grown, "params,kappa_w,grad_weight_ratio,coherence")) == 0
    assert "0 to score and train, 0 repeat training(s) to run, 2 to fill with new metrics" in capsys.readouterr().out
    assert pvt.main(args(fresh, "params,kappa_w,grad_weight_ratio,coherence")) == 0
    a, b = pd.read_csv(grown), pd.read_csv(fresh)
    for key in ("grad_weight_ratio", "grad_weight_ratio@early", "grad_weight_ratio@5", "coherence@5", "kappa_w@5",
                "train_loss_last@5", "val_best_acc"):
        pd.testing.assert_series_equal(a[key], b[key], check_names=False)
    assert (a["settings"] == b["settings"]).all()  # both rows now hold all four metrics
    before = grown.read_bytes()
    capsys.readouterr()
    assert pvt.main(args(grown, "params,kappa_w,grad_weight_ratio,coherence")) == 0
    assert "0 to fill" in capsys.readouterr().out and grown.read_bytes() == before


def _perfect_for(features, acc):
    """Columns (and config keys) on which every feature of ``features`` ranks ``acc`` perfectly: a direct
    column is ``+-acc``; a derived feature's metric inputs are ``exp(+-acc)`` (products stay monotone)
    with lr constant; a config feature goes into the config."""
    from objectives.combine import CONFIG_COLUMNS, DERIVED, DERIVED_INPUTS

    cols, config = {}, {"lr": 0.1}
    for f in features:
        sign = 1.0 if f.direction == "maximize" else -1.0
        base = f.key.split("@")[0]
        if base in DERIVED:
            for inp in DERIVED_INPUTS[base]:
                if inp == "loss_curve":
                    cols.setdefault("loss_curve@50", [json.dumps([2.3, float(2.3 + sign * a)]) for a in acc])
                elif inp not in CONFIG_COLUMNS:
                    suffix = f.key[len(base):] if "@" in f.key else ""
                    cols.setdefault(inp + suffix.replace("@early", "@50"), np.exp(sign * acc))
        elif base in CONFIG_COLUMNS:
            config[base] = [float(sign * a) for a in acc]
        else:
            cols.setdefault(f.key.replace("@early", "@50") if "@early" in f.key else f.key, sign * acc)
    n = len(acc)
    configs = [json.dumps({k: (v[i] if isinstance(v, list) else v) for k, v in config.items()}) for i in range(n)]
    return cols, configs


def test_search_efficiency_orders_by_the_shipped_combined_score():
    from objectives.combine import EARLY_FEATURES, INIT_FEATURES

    n = 20
    acc = np.linspace(0.1, 0.9, n)
    for phase, feats in (("init", INIT_FEATURES), ("early", EARLY_FEATURES)):
        cols, configs = _perfect_for(feats, acc)
        df = pd.DataFrame({"index": range(n), "val_best_acc": acc, "config": configs, **cols})
        sim = se.simulate(df, top=0.05, seeds=5)
        res = {name: runs for name, (_, runs) in sim["results"].items()}
        assert res[f"{se.GRADNAS} combined, {phase}"] == [1] * 5, phase  # the best config is trained first
        flipped = df.assign(val_best_acc=acc[::-1])  # the same proxies, the accuracy reversed: trained last
        res = {name: runs for name, (_, runs) in se.simulate(flipped, top=0.05, seeds=5)["results"].items()}
        assert res[f"{se.GRADNAS} combined, {phase}"] == [n] * 5, phase
