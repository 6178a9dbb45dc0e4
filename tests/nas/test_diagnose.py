"""`diagnose`: gradient-noise report of one candidate (table, summary.json, four PNGs)."""

import json

from nas.cli import main

TINY = '{"blocks": 1, "width": 8, "batch_size": 32, "lr": 0.05}'


def test_diagnose_writes_summary_and_plots(tmp_path, capsys):
    out = tmp_path / "diag"
    code = main(["diagnose", "--space", "resnet_cifar", "--config", TINY, "--dataset", "synthetic",
                 "--steps", "4", "--history", "10", "--seeds", "2", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "cos(seeds)" in text and "SGN Gaussianity init" in text and "spectrum init" in text
    s = json.loads((out / "summary.json").read_text())
    assert s["steps_done"] == 4 and not s["diverged"]
    assert len(s["layers"]) >= 4
    for row in s["layers"]:
        assert 0 <= row["gauss_init"] <= 100
        assert row["align_ci"][0] <= row["align_cos"] <= row["align_ci"][1]
        assert row["chance"] > 0
    for name in ("norm_profile.png", "alignment.png", "spectrum.png", "gaussianity.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_diagnose_runs_on_a_plain_high_lr_candidate(tmp_path, capsys):
    cfg = '{"blocks": 1, "width": 8, "batch_size": 32, "lr": 1.0, "norm": "none", "skip": false}'
    out = tmp_path / "d2"
    code = main(["diagnose", "--space", "resnet_cifar", "--config", cfg, "--dataset", "synthetic", "--steps", "3",
                 "--history", "6", "--seeds", "2", "--out", str(out)])
    assert code == 0
    assert (out / "summary.json").exists()


def test_diagnose_bad_input(tmp_path, capsys):
    assert main(["diagnose", "--space", "nope", "--out", str(tmp_path)]) == 2
    assert main(["diagnose", "--space", "resnet_cifar", "--config", '{"norm": "x"}', "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown space" in err and "norm" in err
