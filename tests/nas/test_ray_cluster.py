"""Joining an existing Ray cluster (--ray-address): a two-node cluster on this machine
(ray.cluster_utils.Cluster); trials run on both nodes; removing a node fails its in-flight trial with a
reason and the search finishes on the other node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

pytestmark = pytest.mark.integration  # a Ray cluster and CLI subprocesses

ROOT = Path(__file__).resolve().parents[2]
TINY = json.dumps({"blocks": 1, "width": 8, "batch_size": [32, 64]})


@pytest.fixture
def cluster():
    c = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c, worker
    c.shutdown()


def _search(tmp_path: Path, address: str | None, trials: int, early_steps: int) -> subprocess.Popen:
    where = ["--ray-address", address] if address else ["--workers", "2"]
    args = ["search", "--space", "resnet_cifar", "--bounds", TINY, "--dataset", "synthetic", *where,
            "--study", "ray", "--runs-dir", str(tmp_path), "--trials", str(trials), "--early-steps", str(early_steps),
            "--probe-size", "32", "--group-size", "4", "--metrics", "grad_weight_ratio",
            "--objectives", "grad_weight_ratio:max", "--no-progress"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, "-m", "nas", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _trials(tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="ray", storage=f"sqlite:///{tmp_path / 'ray' / 'study.db'}").trials


def test_trials_run_on_both_nodes_of_a_joined_cluster(tmp_path, cluster):
    c, _ = cluster
    proc = _search(tmp_path, c.address, trials=6, early_steps=40)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    done = [t for t in _trials(tmp_path) if t.state.name == "COMPLETE"]
    assert len(done) == 6
    assert len({t.user_attrs["node"] for t in done}) == 2  # --workers defaulted to the cluster's 2 CPUs
    assert c.head_node.node_id in {t.user_attrs["node"] for t in done}


def test_without_ray_address_a_search_starts_its_own_instance_beside_a_running_cluster(tmp_path, cluster):
    # ray.init() without an address would join the last cluster started on this machine (and refuse num_cpus)
    c, worker = cluster
    proc = _search(tmp_path, None, trials=2, early_steps=3)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    done = [t for t in _trials(tmp_path) if t.state.name == "COMPLETE"]
    assert len(done) == 2
    assert not {t.user_attrs["node"] for t in done} & {c.head_node.node_id, worker.node_id}


def test_a_node_leaving_fails_its_trial_and_the_search_finishes_on_the_other(tmp_path, cluster):
    c, worker = cluster
    proc = _search(tmp_path, c.address, trials=4, early_steps=300)
    deadline = time.time() + 300
    db = tmp_path / "ray" / "study.db"
    while time.time() < deadline:  # both nodes busy: two trials running
        time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        if db.exists():
            try:
                if sum(t.state.name == "RUNNING" and "seed" in t.user_attrs for t in _trials(tmp_path)) >= 2:
                    break
            except Exception:  # noqa: BLE001 - study not created yet
                continue
    else:
        pytest.fail("the search never ran two trials at once")
    time.sleep(2)
    c.remove_node(worker)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    trials = _trials(tmp_path)
    assert sum(t.state.name == "COMPLETE" for t in trials) == 4
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert failed and all("worker error" in t.user_attrs["fail_reason"] for t in failed)
    assert {t.user_attrs["node"] for t in trials if t.state.name == "COMPLETE" and t.number > failed[0].number} \
        == {c.head_node.node_id}
