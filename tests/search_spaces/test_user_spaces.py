"""Spaces from user code: ``package.module:attr`` and ``my_space.py:attr`` references (a SearchSpace class
or instance, or a define-by-run function), their errors, the define-by-run adapter, lazy layers, and
rebuilding from a reference in another process (what a Ray worker and ``load_model`` do)."""

from __future__ import annotations

import importlib.util
import json
import pickle
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import optuna
import pytest
import torch
from torch.nn.parameter import is_lazy

import objectives
from search_spaces import ConfigError, SpaceError, UnknownSpaceError, get_space, list_spaces, resolve_space_ref
from search_spaces import _registry
from search_spaces._refs import reference_of
from search_spaces.user import FunctionSpace

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "my_space.py"
EXAMPLE_CLASS = REPO_ROOT / "examples" / "my_space_class.py"

USER_CODE = '''
import math

from torch import nn

from search_spaces import SearchSpace, integer, training_dimensions


def space(trial, num_classes=10, input_shape=(3, 32, 32)):
    width = trial.suggest_int("width", 4, 16)
    act = nn.ReLU() if trial.suggest_categorical("act", ["relu", "tanh"]) == "relu" else nn.Tanh()
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), act, nn.Linear(width, num_classes))


def conditional(trial, num_classes):
    layers = [nn.Flatten()]
    if trial.suggest_int("depth", 1, 2) == 2:
        layers += [nn.LazyLinear(trial.suggest_int("hidden", 4, 8)), nn.ReLU()]
    return nn.Sequential(*layers, nn.LazyLinear(num_classes))


def own_lr(trial):
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(10))


def fixed_head(trial):
    trial.suggest_int("w", 2, 4)
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(7))


def not_a_model(trial):
    trial.suggest_int("w", 1, 2)
    return "model"


def fixed_input(trial):
    trial.suggest_int("w", 1, 2)
    return nn.Linear(4, 10)


def big_fails(trial):
    if trial.suggest_int("depth", 1, 3) == 3:
        raise RuntimeError("out of memory")
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(10))


def always_fails(trial):
    trial.suggest_int("w", 1, 2)
    raise RuntimeError("a bug in my space\\nsecond line")


def extra_argument(trial, depth):
    return nn.Linear(2, 2)


class Plain(SearchSpace):
    """An unregistered space with lazy layers and batch norm."""

    @classmethod
    def _default_dimensions(cls):
        return [integer("width", 2, 8, default=4), *training_dimensions()]

    def _build(self, config, num_classes, input_shape):
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(config["width"]), nn.LazyBatchNorm1d(), nn.ReLU(),
                             nn.LazyLinear(num_classes))


INSTANCE = Plain(width=(2, 4))
NUMBER = 3


class Net(nn.Module):
    pass


MODEL = nn.Linear(2, 2)
'''


@pytest.fixture(scope="module")
def user_file(tmp_path_factory) -> Path:
    """``USER_CODE`` as a file (a fresh name per session: modules are cached by path)."""
    path = tmp_path_factory.mktemp("user") / "user_spaces.py"
    path.write_text(USER_CODE)
    return path


@pytest.fixture()
def user_package(tmp_path, monkeypatch) -> str:
    """``USER_CODE`` as the module ``<pkg>.spaces`` of a fresh package on ``sys.path``."""
    pkg = f"userpkg_{uuid.uuid4().hex[:8]}"
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / pkg / "spaces.py").write_text(USER_CODE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{pkg}.spaces"


@pytest.fixture()
def scratch_registry(monkeypatch):
    monkeypatch.setattr(_registry, "_SPACES", dict(_registry._SPACES))


def _state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _trials(n: int, seed: int = 0) -> list[optuna.trial.Trial]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [study.ask() for _ in range(n)]


# ---------------------------------------------------------------------------------------- resolving
def test_module_path_refs_resolve_each_kind(user_package):
    fn = get_space(f"{user_package}:space")
    assert isinstance(fn, FunctionSpace) and fn.ref == f"{user_package}:space"
    cls = get_space(f"{user_package}:Plain", width=(2, 3))
    assert type(cls).__name__ == "Plain" and cls.bounds == {"width": (2, 3)}
    assert cls.ref == cls.name == f"{user_package}:Plain"  # unregistered: its reference is its name
    inst = get_space(f"{user_package}:INSTANCE")
    assert inst.bounds == {"width": (2, 4)} and inst.ref == f"{user_package}:INSTANCE"
    assert get_space(f"{user_package}:INSTANCE", width=3).bounds == {"width": 3}
    assert resolve_space_ref(f"{user_package}:space") == f"{user_package}:space"
    assert list_spaces(user_package) == [f"{user_package}:{a}" for a in
                                         ("space", "conditional", "own_lr", "fixed_head", "not_a_model",
                                          "fixed_input", "big_fails", "always_fails", "extra_argument", "Plain",
                                          "INSTANCE")]


def test_file_refs_resolve_to_an_absolute_path(user_file, monkeypatch):
    monkeypatch.chdir(user_file.parent)
    space = get_space("user_spaces.py:space")
    assert space.ref == f"{user_file}:space"
    assert resolve_space_ref("./user_spaces.py:Plain") == f"{user_file}:Plain"
    assert get_space(space.ref).ref == space.ref  # the canonical reference resolves to itself
    monkeypatch.chdir(REPO_ROOT)
    assert resolve_space_ref("examples/my_space.py:space") == f"{EXAMPLE}:space"
    assert list_spaces("examples/my_space.py") == [f"{EXAMPLE}:space"]
    assert resolve_space_ref("resnet_cifar") == "resnet_cifar"
    assert list_spaces("res*") == ["resnet_cifar"]


def test_registered_class_from_a_file(scratch_registry):
    for name in [n for n, m in sys.modules.items() if "my_space_class" in n]:
        del sys.modules[name]  # import afresh, registering into the scratch registry
    space = get_space(f"{EXAMPLE_CLASS}:TinyMobileNetSpace")
    assert space.name == "tiny_mobilenet" and space.ref == f"{EXAMPLE_CLASS}:TinyMobileNetSpace"
    assert "tiny_mobilenet" in list_spaces() and type(get_space("tiny_mobilenet")) is type(space)
    # the same file imported under a second module name registers again (replacing), not an error
    spec = importlib.util.spec_from_file_location(f"again_{uuid.uuid4().hex[:8]}", EXAMPLE_CLASS)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    small = space.with_bounds(**space.smoke_bounds)
    model = small.build(small.sample(_trials(1)[0]), 10, (1, 28, 28), seed=0)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_objects_from_python_get_their_reference(user_package):
    module = importlib.import_module(user_package)
    space = get_space(module.space)
    assert space.ref == f"{user_package}:space" and reference_of(module.Plain) == f"{user_package}:Plain"
    assert get_space(module.INSTANCE).ref == f"{user_package}:INSTANCE"
    assert reference_of(get_space("vgg")) == "vgg"
    local = FunctionSpace(lambda trial: torch.nn.Linear(2, trial.suggest_int("n", 1, 3)))
    assert local.ref == "" and local.sample(_trials(1)[0])["n"] in (1, 2, 3)


# ---------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("ref, message", [
    ("no_such_pkg_zz.mod:space", "no module named 'no_such_pkg_zz.mod'"),
    ("no/such/dir/my_space.py:space", "does not exist"),
    ("{file}:spac", "has no attribute 'spac' (spaces it defines: space, conditional"),
    ("{file}", "name the space after a colon"),
    ("{file}:NUMBER", "is a int, not a space"),
    ("{file}:Net", "is a model class (Net), not a space"),
    ("{file}:MODEL", "is a model (an nn.Module instance)"),
    ("{file}:extra_argument", "requires an argument 'depth'"),
    ("{file}:not_a_model", "returned str, not an nn.Module"),
    ("{file}:always_fails", "failed when run with every parameter at its low end: RuntimeError: a bug in my space"),
    ("{file}:SearchSpace", "is an abstract SearchSpace"),
    ("resnett", "registered spaces: "),
])
def test_bad_refs_raise_one_line(user_file, ref, message):
    with pytest.raises(SpaceError) as err:
        get_space(ref.format(file=user_file))
    text = str(err.value)
    assert isinstance(err.value, ValueError) and message in text and "\n" not in text
    if ref not in ("{file}:not_a_model", "{file}:always_fails"):
        assert "--space" in text or "def space(trial)" in text


def test_unknown_name_is_still_a_key_error():
    with pytest.raises(UnknownSpaceError) as err:
        get_space("resnett")
    assert isinstance(err.value, KeyError) and "my_space.py:attr" in str(err.value)


def test_a_failing_user_module_is_one_line(tmp_path):
    bad = tmp_path / "broken_space.py"
    bad.write_text("import torch\nraise RuntimeError('boom')\n")
    with pytest.raises(SpaceError, match=r"importing space file .* failed: RuntimeError: boom$"):
        get_space(f"{bad}:space")
    with pytest.raises(SpaceError, match="failed: ModuleNotFoundError: No module named 'not_installed_zz'"):
        (tmp_path / "needs_dep.py").write_text("import not_installed_zz\n")
        get_space(f"{tmp_path / 'needs_dep.py'}:space")


def test_output_that_does_not_fit_the_data(user_file):
    space = get_space(f"{user_file}:fixed_head")
    config = space.default_config()
    with pytest.raises(SpaceError, match=r"returned outputs of shape \(2, 7\) .* the data has 10 classes"):
        space.build(config, 10, (3, 8, 8))
    assert space.build(config, 7, (3, 8, 8))(torch.zeros(1, 3, 8, 8)).shape == (1, 7)
    with pytest.raises(SpaceError, match=r"fixed_input failed on a zero batch of shape \(2, 5\) .*RuntimeError"):
        get_space(f"{user_file}:fixed_input").build({"w": 1}, 10, (5,))
    assert get_space(f"{user_file}:space").build({"width": 4, "act": "relu"}, 3, (5,))(torch.zeros(1, 5)).shape == (1, 3)


# ---------------------------------------------------------------------------------------- define-by-run
def test_sample_build_round_trip(user_file):
    space = get_space(f"{EXAMPLE}:space")
    rng = torch.get_rng_state()
    for i, trial in enumerate(_trials(4)):
        config = space.sample(trial)
        assert set(trial.params) <= set(config) and {"depth", "width", "activation", "lr", "batch_size"} <= set(config)
        restored = json.loads(json.dumps(config))
        assert space.validate(restored) == config
        shape = ((1, 28, 28), (3, 32, 32))[i % 2]
        a, b, c = (space.build(restored, 10, shape, seed=s) for s in (i, i, i + 1))
        assert _state_equal(a, b) and not _state_equal(a, c)
        assert [p.shape for p in a.parameters()] == [p.shape for p in c.parameters()]
        assert a(torch.zeros(3, *shape)).shape == (3, 10)
    assert torch.equal(rng, torch.get_rng_state())  # sampling and seeded builds leave the global RNG alone


def test_training_fields_are_added_and_tunable(user_file):
    space = get_space(f"{user_file}:space", lr=(0.01, 0.1), width=(4, 6))
    configs = [space.sample(t) for t in _trials(20, seed=1)]
    assert all(0.01 <= c["lr"] <= 0.1 and 4 <= c["width"] <= 6 for c in configs)
    assert len({c["batch_size"] for c in configs}) > 5 and len({c["lr"] for c in configs}) > 5
    assert all(c["optimizer"] == "sgd" and c["momentum"] == 0.9 and c["weight_decay"] == 5e-4 for c in configs)
    assert space.default_config()["width"] == 4 and space.bounds == {"lr": (0.01, 0.1), "width": (4, 6)}
    with pytest.raises(ConfigError, match="lr"):
        get_space(f"{user_file}:space", lr=(5.0, 10.0))
    with pytest.raises(ConfigError, match="width"):
        space.validate({"width": 12, "act": "relu"})
    own = get_space(f"{user_file}:own_lr")  # the function's own lr is the lr: no second one
    config = own.sample(_trials(1)[0])
    assert 1e-4 <= config["lr"] <= 1e-2 and list(config) == ["lr", "batch_size", "optimizer", "momentum",
                                                              "weight_decay"]
    assert own.build(config, 10, (4,), seed=0)(torch.zeros(2, 4)).shape == (2, 10)


def test_smoke_and_cpu_bounds_are_attributes_of_the_function():
    def space(trial):
        width = trial.suggest_int("width", 4, 64)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(width), torch.nn.LazyLinear(10))

    assert get_space(space).smoke_bounds == {} and get_space(space).cpu_bounds == {}
    space.smoke_bounds = {"width": (4, 4)}
    space.cpu_bounds = {"width": (4, 16), "batch_size": (32, 64)}
    wrapped = get_space(space)
    assert wrapped.smoke_bounds == {"width": (4, 4)} and wrapped.cpu_bounds["batch_size"] == (32, 64)
    smoke = wrapped.with_bounds(**wrapped.smoke_bounds)
    assert smoke.sample(_trials(1)[0])["width"] == 4 and smoke.cpu_bounds == wrapped.cpu_bounds


def test_dimensions_are_discovered(user_file):
    dims = {d["name"]: d for d in get_space(f"{EXAMPLE}:space").dimensions()}
    assert (dims["depth"]["low"], dims["depth"]["high"], dims["depth"]["default"]) == (1, 3, 1)
    assert dims["width"]["log"] and dims["activation"]["choices"] == ["relu", "gelu", "silu"]
    assert dims["lr"]["fixed"] is False and dims["momentum"]["fixed"] is True
    cond = get_space(f"{user_file}:conditional")
    names = {d["name"]: d for d in cond.dimensions()}
    assert "hidden" in names and "conditional" in names["hidden"]["description"]
    assert "conditional (on one path only): hidden" in cond.note and cond.summary
    assert cond.build({"depth": 1}, 3, (6,), seed=0)(torch.zeros(1, 6)).shape == (1, 3)
    assert cond.build({"depth": 2, "hidden": 5}, 3, (6,), seed=0)[1].out_features == 5
    with pytest.raises(SpaceError, match="lacks a parameter"):
        cond.build({"depth": 2}, 3, (6,))
    partial = get_space(f"{user_file}:big_fails")  # its high end fails: what the low run saw, and it says so
    assert [d["name"] for d in partial.dimensions()][:1] == ["depth"] and "running the function once" in partial.note


# ---------------------------------------------------------------------------------------- lazy layers
@pytest.mark.parametrize("ref, shape", [("{file}:Plain", (2, 3, 3)), (f"{EXAMPLE}:space", (3, 32, 32))])
def test_lazy_layers_are_materialized(user_file, ref, shape):
    space = get_space(ref.format(file=user_file))
    model = space.build(space.sample(_trials(1, seed=3)[0]), 10, shape, seed=0)
    assert model.training and not any(is_lazy(t) for t in [*model.parameters(), *model.buffers()])
    for m in model.modules():  # the materializing pass left the batch-norm statistics untouched
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            assert int(m.num_batches_tracked) == 0 and torch.all(m.running_mean == 0)
    x, y = torch.randn(8, *shape), torch.randint(0, 10, (8,))
    value = objectives.score(model, x, y, metrics=["grad_norm"], on_error="raise")["grad_norm"]
    assert value > 0 and torch.isfinite(torch.tensor(value))


# ---------------------------------------------------------------------------------------- other processes
def test_a_worker_rebuilds_from_the_pickled_reference(tmp_path):
    space = get_space(f"{EXAMPLE}:space", lr=(0.01, 0.1))
    config = space.sample(_trials(1, seed=5)[0])
    model = space.build(config, 10, (1, 28, 28), seed=7)
    spec = {"space": space.ref, "bounds": space.bounds, "config": config}  # what a TrialSpec carries
    (tmp_path / "spec.pkl").write_bytes(pickle.dumps({"spec": spec, "space": space}))
    code = textwrap.dedent("""
        import pickle, sys, torch
        from search_spaces import get_space
        d = pickle.loads(open("spec.pkl", "rb").read())
        s = d["spec"]
        a = get_space(s["space"], **s["bounds"]).build(s["config"], 10, (1, 28, 28), seed=7)
        b = d["space"].build(s["config"], 10, (1, 28, 28), seed=7)
        torch.save({"a": a.state_dict(), "b": b.state_dict(), "bounds": d["space"].bounds}, "out.pt")
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = torch.load(tmp_path / "out.pt", weights_only=True)
    assert out["bounds"] == {"lr": (0.01, 0.1)}
    for key, value in model.state_dict().items():
        assert torch.equal(out["a"][key], value) and torch.equal(out["b"][key], value), key


def test_a_saved_model_is_rebuilt_from_its_reference(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    space = get_space("examples/my_space.py:space", depth=(2, 3))
    config = space.sample(_trials(1, seed=2)[0])
    model = space.build(config, 10, (3, 32, 32), seed=1)
    torch.save({"format": 1, "space": space.ref, "bounds": space.bounds, "config": config, "num_classes": 10,
                "input_shape": [3, 32, 32], "state_dict": model.state_dict()}, tmp_path / "best_model.pt")
    monkeypatch.chdir(tmp_path)  # elsewhere: the stored reference is absolute
    ckpt = torch.load(tmp_path / "best_model.pt", map_location="cpu", weights_only=True)
    loaded = get_space(ckpt["space"], **ckpt["bounds"]).build(ckpt["config"], ckpt["num_classes"],
                                                             tuple(ckpt["input_shape"]))
    loaded.load_state_dict(ckpt["state_dict"])
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded.eval()(x), model.eval()(x))


@pytest.mark.integration
def test_cli_score_takes_a_file_reference():
    done = subprocess.run([sys.executable, "-m", "nas", "score", "--space", "examples/my_space.py:space",
                           "--dataset", "synthetic", "--metrics", "grad_norm", "--json"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    if done.returncode == 2 and "unknown space" in done.stderr:
        pytest.skip("the CLI does not take space references yet (nas.search.config.open_space)")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["grad_norm"] > 0
