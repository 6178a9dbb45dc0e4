"""Tests of the gradient transforms (nas/training/grad_transforms.py): GAN (Yun 2025), GC, z-score, the
wrapper; and of the statistic GAN uses, ``objectives.noise.global_gradient_std``."""

from __future__ import annotations

import copy
import logging
import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.training import grad_transforms as O
from objectives.noise import global_gradient_std


def convnet(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 5 * 5, 6), nn.ReLU(), nn.Linear(6, 3),
    )


def backward(model: nn.Module, seed: int = 0, scale: float = 1.0) -> None:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(8, 2, 5, 5, generator=g), torch.randint(0, 3, (8,), generator=g)
    model.zero_grad()
    (scale * F.cross_entropy(model(x), y)).backward()


def grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def set_grad_std(model: nn.Module, std: float, seed: int = 0) -> None:
    """Replace every gradient by Gaussian noise of std ``std`` (controls s_1 exactly enough)."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g) * std + 0.3 * std


def test_global_std_is_the_unbiased_std_of_the_concatenated_eligible_grads():
    model = convnet()
    backward(model)
    flat = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad.dim() > 1]).double()
    assert global_gradient_std(model.parameters()) == pytest.approx(float(flat.std()), rel=1e-6)
    assert math.isnan(global_gradient_std([nn.Parameter(torch.ones(3))]))


def test_eq1_literal_form_equals_the_simplified_form():
    gan = O.AutoscaledNormalization()
    for s in (1e-4, 3e-3, 1e-2, 0.3):
        for p in (1, 2):
            x = abs(math.log(s)) + gan.eps
            literal = (((0.5 + 1 / (0.5 * x)) - 0.5) * 2) ** p
            assert gan.scale_for(s, p) == pytest.approx(literal)
            assert gan.scale_for(s, p) == pytest.approx((4 / x) ** p)
    assert gan.scale_for(0.0, 1) == 0.0


def test_gan_centres_scales_by_one_factor_and_leaves_1d_grads_alone():
    model = convnet()
    backward(model)
    raw = grads(model)
    s = global_gradient_std(model.parameters())
    gan = O.AutoscaledNormalization()
    gan(model.parameters())
    a = gan.scale_for(s, 2)  # first call: p_1 = 2
    assert gan.last_std == pytest.approx(s) and gan.last_scale == pytest.approx(a)
    factors = []
    for name, p in model.named_parameters():
        if p.dim() > 1:
            g0 = raw[name]
            assert abs(float(p.grad.mean())) < 1e-6 * float(p.grad.abs().max())
            centred = g0 - g0.mean()
            torch.testing.assert_close(p.grad, a * centred, rtol=1e-5, atol=1e-9)
            c = centred.double()
            factors.append(float((p.grad.double() * c).sum() / c.pow(2).sum()))
        else:
            assert torch.equal(p.grad, raw[name])  # bit-identical
    assert max(factors) - min(factors) < 1e-5 * a  # one global factor
    assert len(factors) == 3


@pytest.mark.parametrize("s1,expected_p", [(1e-4, 1), (1e-2, 2)])
def test_gan_exponent_is_chosen_once_at_the_first_step(s1, expected_p):
    # notes-000-002: s_1 = 1e-4 -> a_1 = 0.189 < 0.5 -> p = 1; s_1 = 1e-2 -> a_1 = 0.754 -> p = 2
    model = convnet()
    gan = O.AutoscaledNormalization()
    set_grad_std(model, s1)
    s = global_gradient_std(model.parameters())
    gan(model.parameters())
    assert gan.p == expected_p
    assert gan.last_scale == pytest.approx(gan.scale_for(s, 2))
    other = 1e-2 if expected_p == 1 else 1e-4  # would pick the other exponent if re-chosen
    for step in range(3):
        set_grad_std(model, other, seed=step + 1)
        s = global_gradient_std(model.parameters())
        gan(model.parameters())
        assert gan.p == expected_p
        assert gan.last_scale == pytest.approx(gan.scale_for(s, expected_p))
    assert gan.steps == 4


def test_gan_with_plain_sgd_updates_by_minus_lr_a_centred_gradient():
    model = convnet()
    lr = 0.1
    opt = O.GradientAutoscaledNormalization(torch.optim.SGD(model.parameters(), lr=lr))
    for step in range(3):
        backward(model, seed=step)
        raw = grads(model)
        s = global_gradient_std(model.parameters())
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        opt.step()
        a = opt.transform.scale_for(s, 2 if step == 0 else opt.transform.p)
        for name, p in model.named_parameters():
            g = raw[name]
            expected = -lr * a * (g - g.mean()) if g.dim() > 1 else -lr * g
            torch.testing.assert_close(p.detach() - before[name], expected, rtol=1e-4, atol=1e-7)


def test_gradient_centralization_removes_per_output_channel_means():
    model = convnet()
    backward(model)
    raw = grads(model)
    O.GradientCentralization()(model.parameters())
    for name, p in model.named_parameters():
        if p.dim() > 1:
            means = p.grad.reshape(p.shape[0], -1).mean(1)
            assert means.abs().max() < 1e-7 + 1e-6 * float(raw[name].abs().max())
            g0 = raw[name].reshape(p.shape[0], -1)
            torch.testing.assert_close(p.grad.reshape(p.shape[0], -1), g0 - g0.mean(1, keepdim=True))
        else:
            assert torch.equal(p.grad, raw[name])


def test_zscore_standardizes_each_eligible_tensor():
    model = convnet()
    backward(model)
    raw = grads(model)
    O.ZScoreNormalization()(model.parameters())
    for name, p in model.named_parameters():
        if p.dim() > 1:
            assert float(p.grad.mean()) == pytest.approx(0.0, abs=1e-6)
            assert float(p.grad.std()) == pytest.approx(1.0, rel=1e-5)
        else:
            assert torch.equal(p.grad, raw[name])


def test_make_grad_transform_names():
    model = convnet()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    assert O.make_grad_transform("none", sgd) is sgd
    assert isinstance(O.make_grad_transform("gan", sgd), O.GradientAutoscaledNormalization)
    assert isinstance(O.make_grad_transform("gc", sgd).transform, O.GradientCentralization)
    assert isinstance(O.make_grad_transform("ZScore", sgd).transform, O.ZScoreNormalization)
    assert O.GRAD_TRANSFORMS == ("none", "gan", "gc", "zscore")
    with pytest.raises(ValueError, match="valid: none, gan, gc, zscore"):
        O.make_grad_transform("adam", sgd)
    with pytest.raises(TypeError):
        O.TransformedOptimizer(object(), O.GradientCentralization())


def test_wrapper_is_an_optimizer_for_schedulers_checkpoints_and_closures():
    model = convnet()
    opt = O.make_grad_transform("gan", torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for step in range(2):
        backward(model, seed=step)
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)
    assert opt.optimizer.param_groups is opt.param_groups and len(opt.state) > 0
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    # checkpoint round trip keeps the exponent and the momentum buffers
    state = opt.state_dict()
    clone = copy.deepcopy(model)
    opt2 = O.make_grad_transform("gan", torch.optim.SGD(clone.parameters(), lr=0.1, momentum=0.9))
    opt2.load_state_dict(state)
    assert opt2.transform.p == opt.transform.p and opt2.transform.steps == 2
    assert set(state) == {"optimizer", "grad_transform"}
    opt2.load_state_dict(state["optimizer"])  # a plain inner state dict also loads
    restored = pickle.loads(pickle.dumps(opt))
    assert restored.transform.p == opt.transform.p

    def closure():
        model.zero_grad()
        loss = F.cross_entropy(model(torch.randn(4, 2, 5, 5)), torch.tensor([0, 1, 2, 0]))
        loss.backward()
        return loss

    assert torch.isfinite(opt.step(closure))
    assert opt.transform.steps == 3


def test_gan_scale_above_one_is_logged_and_can_be_clipped(caplog, monkeypatch):
    model = convnet()
    set_grad_std(model, 0.5)  # |ln 0.5| < 4: a_t > 1, outside the paper's claimed (0, 1]
    monkeypatch.setattr(O, "_amplified_logged", False)  # as in a fresh process
    gan = O.AutoscaledNormalization()
    with caplog.at_level(logging.WARNING, logger="nas.training.grad_transforms"):
        gan(model.parameters())
    assert gan.last_scale > 1 and "amplified" in caplog.text
    caplog.clear()  # a search trains many GAN candidates: the warning is said once per process
    again = O.AutoscaledNormalization()
    with caplog.at_level(logging.WARNING, logger="nas.training.grad_transforms"):
        set_grad_std(model, 0.5)
        again(model.parameters())
    assert again.last_scale > 1 and "amplified" not in caplog.text
    set_grad_std(model, 0.5)
    clipped = O.AutoscaledNormalization(max_scale=1.0)
    clipped(model.parameters())
    assert clipped.last_scale == 1.0
    zero = convnet()
    for p in zero.parameters():
        p.grad = torch.zeros_like(p)
    gan0 = O.AutoscaledNormalization()
    gan0(zero.parameters())
    assert gan0.last_scale == 0.0 and all(torch.equal(p.grad, torch.zeros_like(p)) for p in zero.parameters())
