"""Tests of benchmarks/nb201_proxies.py: helpers in-process, the script end to end in a subprocess.

The end-to-end tests need the NATS-Bench table at ``<repo>/../shared/nb201/nats_bench.csv`` (the project
does not ship it) and are skipped with a reason when it is absent.
"""

from __future__ import annotations

import importlib.util
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "nb201_proxies.py"
SHARED = ROOT.parent / "shared" / "nb201"
TABLE = SHARED / "nats_bench.csv"
NASLIB = SHARED / "naslib_zc_nasbench201.json"
README = SHARED / "README.md"

needs_table = pytest.mark.skipif(
    not TABLE.is_file(), reason=f"NATS-Bench table not found at {TABLE} (public data, not in the repository)")
needs_naslib = pytest.mark.skipif(not NASLIB.is_file(), reason=f"NASLib zero-cost values not found at {NASLIB}")

DATA_FREE = ["params", "flops", "synflow", "naswot_random"]
ROW = re.compile(r"^(?P<metric>\S+)\s+(?P<data>\S+)\s+(?P<n>\d+)\s+"
                 r"(?P<nonfinite>\d+(?: [-+a-z]+)?(?:, \d+ [-+a-z]+)*)\s")


def _load_module():
    spec = importlib.util.spec_from_file_location("nb201_proxies", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


nb = _load_module()


def run_script(*args: str, timeout: float = 600) -> tuple[subprocess.CompletedProcess, float]:
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--table", str(TABLE), "--no-progress", "--threads", "1", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, time.perf_counter() - t


def table_rows(stdout: str) -> dict[str, dict[str, str]]:
    """metric -> {data, n, nonfinite} of the printed correlation table."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("metric "))
    rows = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        m = ROW.match(line)
        assert m, f"unparsable table row: {line!r}"
        rows[m["metric"]] = m.groupdict()
    return rows


def counts(stdout: str) -> tuple[int, int, int]:
    m = re.search(r"cells: (\d+) \((\d+) fully from cache, (\d+) scored; (\d+) metric values computed\)", stdout)
    assert m, stdout
    return int(m[2]), int(m[3]), int(m[4])


# ------------------------------------------------------------------------------------------------------
# Helpers (no data files needed)
# ------------------------------------------------------------------------------------------------------


def test_nonfinite_values_rank_worst_and_tied():
    values = [1.0, 2.0, -math.inf, math.nan, 3.0]
    truth = [2.0, 3.0, 1.0, 1.0, 4.0]  # the two failures sit tied at the bottom of the ground truth too
    rho, tau = nb.rank_corr(nb.oriented(values), truth)
    assert rho == pytest.approx(1.0) and tau == pytest.approx(1.0)
    # +inf counts as a failure as well, and a minimized metric is negated first
    o = nb.oriented([3.0, 2.0, math.inf, 1.0], "minimize")
    assert list(o) == [-3.0, -2.0, -math.inf, -1.0]
    assert nb.count_nonfinite(values) == "1 -inf, 1 nan"
    assert nb.count_nonfinite([1.0, math.inf]) == "1 +inf"
    assert nb.count_nonfinite([1.0, 2.0]) == "0"


def test_rank_corr_matches_scipy_and_handles_constants():
    from scipy import stats

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    rho, tau = nb.rank_corr(a, b)
    assert rho == pytest.approx(stats.spearmanr(a, b)[0]) and tau == pytest.approx(stats.kendalltau(a, b)[0])
    assert all(math.isnan(v) for v in nb.rank_corr([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert all(math.isnan(v) for v in nb.rank_corr([1.0, 2.0], [1.0, 2.0]))


def test_naslib_key_decoding():
    # NASLib: op index per edge (0 skip, 1 none, 2 conv3x3, 3 conv1x1, 4 avg pool), edges (1,2),(1,3),(1,4),
    # (2,3),(2,4),(3,4) with node 1 the input; ours: inputs of node 1 | node 2 | node 3.
    assert nb.naslib_key_to_arch("(4, 1, 0, 0, 0, 3)") == (
        "|avg_pool_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|skip_connect~1|nor_conv_1x1~2|")
    assert nb.naslib_key_to_arch("(2, 3, 4, 1, 0, 2)") == (
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_3x3~2|")
    with pytest.raises(ValueError):
        nb.naslib_key_to_arch("(5, 0, 0, 0, 0, 0)")


def test_sample_is_seeded_distinct_and_prefix_stable():
    a = nb.sample_indices(50, seed=3)
    assert a == nb.sample_indices(50, seed=3) and len(set(a)) == 50
    assert nb.sample_indices(200, seed=3)[:50] == a
    assert a != nb.sample_indices(50, seed=4)
    assert all(0 <= i < 15625 for i in a)


def test_cache_roundtrip_atomic_and_merging(tmp_path):
    path = tmp_path / "sub" / "scores.csv"
    c = nb.ScoreCache(path)
    c.put(3, "synflow", "s1", -math.inf, 0.5, 1)
    c.put(3, "naswot_random", "s1", math.nan, 0.25, 2)
    c.put(4, "params", "s1", 129306.0, 0.001, 1)
    c.flush()
    other = nb.ScoreCache(path)  # a second process writing its own rows meanwhile
    other.put(9, "params", "s1", 7.0, 0.0, 1)
    other.flush()
    c.put(5, "params", "s2", 1.5, 0.0, 1)
    c.flush()  # keeps the other process's row
    back = nb.ScoreCache(path)
    assert back.get(3, "synflow", "s1")[0] == -math.inf
    assert math.isnan(back.get(3, "naswot_random", "s1")[0])
    assert back.get(4, "params", "s1") == (129306.0, 0.001, 1)
    assert back.get(9, "params", "s1")[0] == 7.0 and back.get(5, "params", "s2")[0] == 1.5
    assert back.get(4, "params", "s2") is None
    assert sorted(p.name for p in path.parent.iterdir()) == ["scores.csv"]  # no temporary file left


def test_metric_selection_by_dataset():
    assert nb.select_metrics(None, "none") == DATA_FREE
    everything = nb.select_metrics(None, "synthetic")
    assert everything[:4] == DATA_FREE and {"grad_norm", "snip", "naswot", "kappa_w"} <= set(everything)
    assert nb.select_metrics(["syn*", "params"], "none") == ["synflow", "params"]
    with pytest.raises(SystemExit, match="need data"):
        nb.select_metrics(["grad_norm"], "none")
    with pytest.raises(SystemExit, match="matches nothing"):
        nb.select_metrics(["nope"], "synthetic")
    assert nb.data_label("grad_norm", "mnist5k") == "MISMATCH(mnist5k)"
    assert nb.data_label("grad_norm", "cifar10") == "cifar10"
    assert nb.data_label("synflow", "mnist5k") == "free"


def test_settings_separate_what_values_depend_on():
    args = nb.parse_args(["--table", "t.csv", "--dataset", "synthetic"])
    other = nb.parse_args(["--table", "t.csv", "--dataset", "mnist5k", "--batch", "32"])
    assert nb.metric_settings("synflow", args) == nb.metric_settings("synflow", other)  # data-free: shared
    assert nb.metric_settings("naswot_random", args) != nb.metric_settings("naswot_random", other)  # batch
    assert nb.metric_settings("grad_norm", args) != nb.metric_settings("grad_norm", other)


def test_kaiming_init_is_a_separate_setting_and_has_kaiming_variance():
    args = nb.parse_args(["--table", "t.csv"])
    kaiming = nb.parse_args(["--table", "t.csv", "--init", "kaiming"])
    for metric in DATA_FREE:
        assert nb.metric_settings(metric, args) != nb.metric_settings(metric, kaiming)
    conv, bn = torch.nn.Conv2d(64, 64, 3, bias=True), torch.nn.BatchNorm2d(64)
    torch.nn.init.constant_(bn.weight, 3.0)
    torch.manual_seed(0)
    for m in (conv, bn):
        nb.kaiming_fanin_(m)
    fan_in = 64 * 3 * 3
    assert conv.weight.var().item() == pytest.approx(2.0 / fan_in, rel=0.05)  # gain sqrt(2), fan in
    assert torch.all(conv.bias == 0) and torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_mnist_digits_padded_to_cifar_shape():
    x = torch.randn(4, 1, 28, 28)
    out = nb.mnist_to_cifar_shape(x, background=-0.42)
    assert out.shape == (4, 3, 32, 32)
    assert torch.equal(out[:, 0, 2:30, 2:30], x[:, 0]) and torch.equal(out[:, 1], out[:, 2])
    assert torch.all(out[:, :, :2] == -0.42) and torch.all(out[:, :, :, 30:] == -0.42)


def test_conv_baseline():
    assert nb.conv_baseline(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|") == 19.0


@pytest.mark.skipif(not README.is_file(), reason=f"{README} not found")
def test_published_figures_match_the_readme():
    text = " ".join(README.read_text().split())
    labels = {"params": "#params", "flops": "FLOPs", "snip": "SNIP", "grasp": "GraSP", "synflow": "synflow",
              "naswot_random": "NASWOT (random inputs)", "zico": "ZiCo"}
    for metric, label in labels.items():
        rho, tau = nb.PUBLISHED[metric]["AZ-NAS"]
        assert f"{label} {rho:.3f}/{tau:.3f}" in text, metric
    for metric in ("grad_norm", "snip", "grasp", "fisher", "synflow", "jacob_cov"):
        assert f"{metric} {nb.PUBLISHED[metric]['Abdelfattah'][0]:.3f}" in text, metric
    assert f"rho {nb.PUBLISHED['conv_baseline']['README'][0]:.3f}" in text


@pytest.mark.integration
def test_help_explains_every_option():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    for option in ("--table", "--sample", "--seed", "--dataset", "--data-dir", "--data-seed", "--batch",
                   "--metrics", "--naslib", "--naslib-only", "--indices", "--cache", "--flush-every",
                   "--threads", "--channels", "--cells", "--init-seed", "--out", "--no-baseline",
                   "--no-progress", "--verbose"):
        assert option in proc.stdout, option
    assert "MISMATCH" in proc.stdout and "ranked *worst*" in proc.stdout


# ------------------------------------------------------------------------------------------------------
# The script end to end
# ------------------------------------------------------------------------------------------------------


@needs_table
@pytest.mark.integration
def test_script_data_free_sample_and_cache(tmp_path):
    cache = tmp_path / "scores.csv"
    # issue 7: `--sample 20` runs in the default suite (full skeleton, data-free metrics: about 25 s)
    proc, first = run_script("--sample", "20", "--seed", "0", "--dataset", "none", "--cache", str(cache),
                             "--out", str(tmp_path / "table.csv"))
    rows = table_rows(proc.stdout)
    assert list(rows) == [*DATA_FREE, "conv_baseline"]
    assert all(r["n"] == "20" and r["data"] == "free" for r in rows.values())
    assert counts(proc.stdout) == (0, 20, 20 * len(DATA_FREE))
    assert "Seconds per cell" in proc.stdout and "MISMATCH(" not in proc.stdout
    assert (tmp_path / "table.csv").is_file() and cache.is_file()
    # the index -> accuracy mapping is right: params rank-correlates with CIFAR-10 accuracy as on the full space
    table = pd.read_csv(tmp_path / "table.csv").set_index("metric")
    assert table.loc["params", "rho_C10"] > 0.5

    proc2, second = run_script("--sample", "20", "--seed", "0", "--dataset", "none", "--cache", str(cache))
    assert counts(proc2.stdout) == (20, 0, 0)  # nothing recomputed
    assert table_rows(proc2.stdout) == rows
    assert second < first


@needs_table
@pytest.mark.integration
def test_script_stopped_midway_keeps_its_cache(tmp_path):
    cache = tmp_path / "scores.csv"
    cmd = [sys.executable, str(SCRIPT), "--table", str(TABLE), "--no-progress", "--threads", "1", "--sample",
           "200", "--dataset", "none", "--channels", "8", "--cells", "1", "--flush-every", "1",
           "--cache", str(cache)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not cache.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "rerun the same command to continue" in err
    done = sorted(nb.ScoreCache(cache).rows)
    indices = sorted({k[0] for k in done})
    assert indices and all(sum(k[0] == i for k in done) == len(DATA_FREE) for i in indices)  # whole cells
    assert set(indices) <= set(nb.sample_indices(200, 0))
    again, _ = run_script("--indices", *map(str, indices), "--dataset", "none", "--channels", "8", "--cells", "1",
                          "--cache", str(cache))
    assert counts(again.stdout) == (len(indices), 0, 0)


@needs_table
@needs_naslib
@pytest.mark.integration
def test_script_naslib_agreement_on_given_cells(tmp_path):
    naslib = nb.load_naslib(NASLIB)
    cells = [str(i) for i in sorted(naslib)[:4]]
    proc, _ = run_script("--indices", *cells, "--metrics", "params", "flops", "--naslib", str(NASLIB),
                         "--channels", "8", "--cells", "1")
    assert "NOT the benchmark skeleton" in proc.stdout
    assert "on the 4 scored cells NASLib has" in proc.stdout
    m = re.search(r"key decoding check: rho\(NASLib val_accuracy, table CIFAR-10 test accuracy\) = (\S+)",
                  proc.stdout)
    assert m and float(m[1]) > 0.5
    assert re.search(r"^\s+params\s+params\s+free\s+4\s", proc.stdout, re.M)
    assert re.search(r"^\s+flops\s+flops\s+free\s+4\s", proc.stdout, re.M)


@needs_table
@pytest.mark.integration
def test_script_rejects_data_metric_without_data():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--table", str(TABLE), "--sample", "2", "--metrics", "grad_norm"],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0 and "need data" in proc.stderr


@pytest.mark.slow
@needs_table
@pytest.mark.integration
def test_script_sample_20_with_a_data_metric_on_synthetic(tmp_path):
    cache = tmp_path / "scores.csv"
    args = ("--sample", "20", "--seed", "1", "--dataset", "synthetic", "--metrics", *DATA_FREE, "grad_norm",
            "--cache", str(cache))
    proc, first = run_script(*args)
    rows = table_rows(proc.stdout)
    assert list(rows) == [*DATA_FREE, "grad_norm", "conv_baseline"]
    assert all(r["n"] == "20" for r in rows.values())
    assert rows["grad_norm"]["data"] == "MISMATCH(synthetic)"
    assert all(rows[m]["data"] == "free" for m in DATA_FREE)
    assert "NOT comparable" in proc.stdout
    assert counts(proc.stdout) == (0, 20, 20 * 5)

    proc2, second = run_script(*args)
    assert counts(proc2.stdout) == (20, 0, 0)
    assert table_rows(proc2.stdout) == rows
    assert second < first / 2


def test_az_nas_row_is_the_summed_log_rank_of_its_four_components():
    from objectives.combine import Feature, rank_aggregate

    rng = np.random.default_rng(0)
    n = 12
    truth = {short: rng.random(n) for short, _ in nb.TARGETS}
    values = {p: rng.random(n) for p in nb.AZ_NAS_PARTS}
    values["az_trainability"][3] = -math.inf  # an undefined component ranks that cell last on it
    rows = {r["metric"]: r for r in nb.correlation_table(list(nb.AZ_NAS_PARTS), values, truth, "none")}
    assert nb.AZ_NAS in rows and rows[nb.AZ_NAS]["data"] == "free"
    expected = rank_aggregate(pd.DataFrame(values), [Feature(p, "maximize") for p in nb.AZ_NAS_PARTS])
    from scipy import stats

    assert rows[nb.AZ_NAS]["rho_C10"] == pytest.approx(stats.spearmanr(expected, truth["C10"]).statistic)
    assert rows[nb.AZ_NAS]["pub_rho_AZ-NAS"] == 0.913
    assert nb.GAUSSIAN_BATCH["meco"] == 1 and nb.GAUSSIAN_BATCH["az_expressivity"] == 64
