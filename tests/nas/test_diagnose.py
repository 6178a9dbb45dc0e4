"""`diagnose`: gradient-noise report of one candidate (table, summary.json, four PNGs)."""

import json
import math

import nas.diagnose as diagnose_mod
from nas.cli import main
from nas.training import make_optimizer

TINY = '{"blocks": 1, "width": 8, "batch_size": 32, "lr": 0.05}'


def test_diagnose_writes_summary_and_plots(tmp_path, capsys):
    out = tmp_path / "diag"
    code = main(["diagnose", "--space", "resnet_cifar", "--config", TINY, "--dataset", "synthetic",
                 "--steps", "4", "--history", "10", "--seeds", "2", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "cos(seeds)" in text and "SGN Gaussianity init" in text and "spectrum init" in text
    header = next(line for line in text.splitlines() if line.startswith("layer "))
    for column in header.split()[1:]:  # each column is defined under the table
        assert f"{column} =" in text or f"{column} /" in text, column
    assert "paper 000, Roy & Roy" in text
    s = json.loads((out / "summary.json").read_text())
    assert s["steps_done"] == 4 and not s["diverged"]
    assert len(s["layers"]) >= 4
    for row in s["layers"]:
        assert 0 <= row["gauss_init"] <= 100
        assert row["align_ci"][0] <= row["align_cos"] <= row["align_ci"][1]
        assert row["chance"] > 0
    for name in ("norm_profile.png", "alignment.png", "spectrum.png", "gaussianity.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_diagnose_runs_on_a_plain_high_lr_candidate(tmp_path, capsys, monkeypatch):
    # no normalization, no skips, lr 1.0: the kind of net whose training the diagnosis is for
    cfg = '{"blocks": 1, "width": 8, "batch_size": 32, "lr": 1.0, "norm": "none", "skip": false}'
    out = tmp_path / "d2"
    built = []

    def recording(model, config):
        built.append(make_optimizer(model, config))
        return built[-1]

    monkeypatch.setattr(diagnose_mod, "make_optimizer", recording)
    code = main(["diagnose", "--space", "resnet_cifar", "--config", cfg, "--dataset", "synthetic", "--steps", "3",
                 "--history", "6", "--seeds", "2", "--out", str(out)])
    assert code == 0
    # trained with the recipe's optimizer (Nesterov SGD, as the early steps and validation) at lr 1.0
    assert len(built) == 1
    group = built[0].param_groups[0]
    assert group["lr"] == 1.0 and group["momentum"] == 0.9 and group["nesterov"]

    s = json.loads((out / "summary.json").read_text())
    assert s["config"]["norm"] == "none" and s["config"]["skip"] is False and s["config"]["lr"] == 1.0
    # the training part: a finite loss per step done; diverged exactly when it stopped early
    assert s["steps"] == 3 and 1 <= s["steps_done"] <= 3
    assert len(s["loss_curve"]) == s["steps_done"] and all(math.isfinite(v) for v in s["loss_curve"])
    assert s["diverged"] == (s["steps_done"] < s["steps"])
    g = s["global_std"]
    assert g["num_steps"] == s["steps_done"] and math.isfinite(g["global_std_first"]) and g["global_std_first"] > 0
    # one row per weight of the plain net (no norm layers), every value finite and in range
    assert [r["layer"] for r in s["layers"]] == [
        "stem.0.weight", "stages.0.0.conv1.weight", "stages.0.0.conv2.weight", "stages.1.0.conv1.weight",
        "stages.1.0.conv2.weight", "stages.2.0.conv1.weight", "stages.2.0.conv2.weight", "fc.weight"]
    for row in s["layers"]:
        assert row["size"] > 0 and math.isfinite(row["norm_init"]) and row["norm_init"] > 0
        assert math.isfinite(row["norm_mean"]) and row["norm_mean"] > 0 and row["norm_cv"] >= 0
        assert -1 <= row["align_ci"][0] <= row["align_cos"] <= row["align_ci"][1] <= 1
        assert 0 < row["chance"] < 1 and 0 <= row["gauss_init"] <= 100
    kept = sum(min(r["size"], s["history"]["max_weights_per_layer"]) for r in s["layers"])
    g0 = s["gaussianity_init"]
    assert g0["tested"] + g0["dead"] == kept and 0 <= g0["percent"] <= 100 and g0["samples"] == 6
    sp = s["spectrum_init"]
    assert sp["dim"] == kept and 1 <= sp["available"] <= 6 and sp["ratio_10"] >= 1
    if s["diverged"]:
        assert s["gaussianity_after"] is None and s["spectrum_after"] is None
    else:
        assert s["gaussianity_after"]["tested"] + s["gaussianity_after"]["dead"] == kept
        assert s["spectrum_after"]["ratio_10"] >= 1
    for name in ("norm_profile.png", "alignment.png", "spectrum.png", "gaussianity.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"training: {s['steps_done']}/3 steps" in capsys.readouterr().out


def test_diagnose_bad_input(tmp_path, capsys):
    assert main(["diagnose", "--space", "nope", "--out", str(tmp_path)]) == 2
    assert main(["diagnose", "--space", "resnet_cifar", "--config", '{"norm": "x"}', "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown space" in err and "norm" in err


def test_diagnose_a_trial_of_a_stored_study(tmp_path, capsys):
    # the study is opened with nas.study.load_study: the trial's config, space and dataset are used
    import optuna

    from nas.study import default_storage, open_study, parse_objectives

    config = json.loads(TINY)
    study = open_study("s", default_storage(tmp_path, "s"), parse_objectives("kappa_w:min"), [], "random", 0,
                       {"space": "resnet_cifar", "dataset": "synthetic", "bounds": {}})
    study.add_trial(optuna.trial.create_trial(values=[1.0], user_attrs={"config": config}))
    out = tmp_path / "d3"
    args = ["diagnose", "--runs-dir", str(tmp_path), "--steps", "2", "--history", "4", "--seeds", "2"]
    assert main([*args, "--study", "s", "--trial", "0", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["space"] == "resnet_cifar" and s["dataset"] == "synthetic" and s["steps_done"] == 2
    assert {k: s["config"][k] for k in config} == config
    capsys.readouterr()
    assert main([*args, "--study", "nope", "--trial", "0", "--storage", default_storage(tmp_path, "s")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no study 'nope'" in err[0] and "stored: s" in err[0]
