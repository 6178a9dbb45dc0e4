"""nb201: index order against NATS-Bench's table, parameter counts against NASLib, arch strings."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from search_spaces import ConfigError, get_space
from search_spaces.nb201 import NUM_ARCHS, OPS, arch_string, arch_to_index, index_to_arch, parse_arch

# Asserted in NAS-Bench-201's own generator (AutoDL-Projects, exps/NAS-Bench-201/main.py, generate_meta_info).
REFERENCE_INDICES = {
    0: "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    9: "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    123: "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|",
}

# NASLib key encoding (../shared/nb201/README.md): op index per edge, edges (1,2),(1,3),(1,4),(2,3),(2,4),(3,4)
# with node 1 the input, i.e. our edges 0->1, 0->2, 0->3, 1->2, 1->3, 2->3.
NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")


def _naslib_key_to_arch(key: str) -> str:
    e01, e02, e03, e12, e13, e23 = (NASLIB_OPS[int(i)] for i in key.strip("()").split(","))
    return f"|{e01}~0|+|{e02}~0|{e12}~1|+|{e03}~0|{e13}~1|{e23}~2|"


def test_reference_indices():
    for index, arch in REFERENCE_INDICES.items():
        assert index_to_arch(index) == arch
        assert arch_to_index(arch) == index


def test_all_indices_round_trip():
    archs = [index_to_arch(i) for i in range(NUM_ARCHS)]
    assert NUM_ARCHS == 15_625 == len(set(archs))
    assert all(arch_to_index(a) == i for i, a in enumerate(archs))
    assert all(arch_string(parse_arch(a)) == a for a in archs)


def test_index_order_matches_nats_bench_csv(nb201_file):
    with open(nb201_file("nats_bench.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == NUM_ARCHS
    mismatches = [k for k, row in enumerate(rows) if row["ArchitectureString"] != index_to_arch(k)]
    assert not mismatches, f"{len(mismatches)} rows differ, first at index {mismatches[0]}"
    # the default cell is a best CIFAR-10 cell of the table
    accuracy = [float(row["CIFAR10TestAccuracy200Epochs"]) for row in rows]
    default = get_space("nb201").default_config()["arch"]
    assert accuracy[arch_to_index(default)] == max(accuracy)


def _naslib_table(nb201_file) -> dict[str, dict]:
    with open(nb201_file("naslib_zc_nasbench201.json")) as fh:
        table = json.load(fh)["nasbench201"]["cifar10"]
    assert len(table) == 491
    return table


def _check_params(keys, table, n_params) -> None:
    space = get_space("nb201")
    errors = {}
    for key in keys:
        model = space.build({"arch": _naslib_key_to_arch(key)}, num_classes=10, input_shape=(3, 32, 32))
        errors[key] = abs(n_params(model) / 1e6 - table[key]["params"]) / table[key]["params"]
    worst = max(errors, key=errors.get)
    assert errors[worst] <= 0.01, (worst, errors[worst])


def test_parameter_counts_match_naslib(nb201_file, n_params):
    """One architecture per distinct NASLib parameter count (every count in the table is checked)."""
    table = _naslib_table(nb201_file)
    first_per_count = {}
    for key, entry in table.items():
        first_per_count.setdefault(entry["params"], key)
    assert len(first_per_count) >= 20
    _check_params(first_per_count.values(), table, n_params)


@pytest.mark.slow
def test_parameter_counts_match_naslib_all_491(nb201_file, n_params):
    """All 491 architectures (about 10-20 s on one CPU core)."""
    table = _naslib_table(nb201_file)
    _check_params(table, table, n_params)


def test_conv_free_cell_parameter_count(n_params):
    """A cell without convolutions leaves the skeleton alone; counted by hand:
    stem 3*16*9 + 2*16; reductions 16->32 (9*16*32 + 9*32*32 + 16*32 + 4*32) and 32->64 (same pattern);
    last BN 2*64; head 64*10 + 10 = 73,306 (NASLib: 0.073306 M)."""
    reduction = lambda a, b: 9 * a * b + 9 * b * b + a * b + 4 * b  # noqa: E731
    expected = 3 * 16 * 9 + 2 * 16 + reduction(16, 32) + reduction(32, 64) + 2 * 64 + 64 * 10 + 10
    arch = "|skip_connect~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    assert n_params(get_space("nb201").build({"arch": arch}, 10, (3, 32, 32))) == expected == 73_306


def test_sample_uses_one_categorical_per_edge(random_trials):
    space = get_space("nb201", channels=8, cells=1)
    for trial in random_trials(10, seed=4):
        config = space.sample(trial)
        assert sorted(trial.params) == ["batch_size", "edge_01", "edge_02", "edge_03", "edge_12", "edge_13",
                                        "edge_23", "lr"]
        e = trial.params
        assert config["arch"] == (f"|{e['edge_01']}~0|+|{e['edge_02']}~0|{e['edge_12']}~1|+"
                                  f"|{e['edge_03']}~0|{e['edge_13']}~1|{e['edge_23']}~2|")


def test_narrowing_ops_and_fixing_the_cell(random_trials):
    space = get_space("nb201", arch=["nor_conv_3x3", "skip_connect"])
    for trial in random_trials(10, seed=5):
        assert set(parse_arch(space.sample(trial)["arch"])) <= {"nor_conv_3x3", "skip_connect"}
    with pytest.raises(ConfigError, match="arch"):
        space.validate({"arch": index_to_arch(0)})  # uses avg_pool_3x3
    fixed = get_space("nb201", arch=index_to_arch(42))
    assert fixed.sample(random_trials(1, seed=6)[0])["arch"] == index_to_arch(42)


@pytest.mark.parametrize("bad", [
    "|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # unknown op
    "|none~0|+|none~0|none~1|",  # two nodes
    "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",  # wrong source
    7,  # not a string
])
def test_bad_arch_is_a_config_error(bad):
    with pytest.raises(ConfigError) as err:
        get_space("nb201").validate({"arch": bad})
    assert err.value.field == "arch"
    assert all(op in str(err.value) for op in OPS)


def test_other_input_shapes():
    model = get_space("nb201", channels=8, cells=1).build({}, 10, (1, 28, 28), seed=0)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_index_errors():
    with pytest.raises(ValueError):
        index_to_arch(NUM_ARCHS)
    with pytest.raises(ValueError):
        arch_to_index("|none~0|")
