"""date.build_optimizer: param groups, descent on a quadratic, and steps checked by hand.

LARS is checked against Algorithm 1 of You, Gitman and Ginsburg 2017 ("Large Batch Training of
Convolutional Networks"), LAMB against Algorithm 2 of You et al. 2020 ("Large Batch Optimization for
Deep Learning: Training BERT in 76 minutes"), SGD against torch.optim.SGD's documented update.
Expected values are computed from those formulas with plain Python floats (float64 tensors here).
"""

import math
import subprocess
import sys

import pytest
import torch

import date
from date import Recipe, build_optimizer
from date.optim import NO_WEIGHT_DECAY_GROUP, WEIGHTS_GROUP

try:
    import pytorch_optimizer
except ImportError:  # the library's optional extra "lars"; SGD and the Adam family need nothing
    pytorch_optimizer = None

pytestmark = pytest.mark.filterwarnings("error")

#: LARS and LAMB come from pytorch_optimizer, the library's optional extra "lars".
needs_lars_extra = pytest.mark.skipif(
    pytorch_optimizer is None, reason="the library's [lars] extra (pytorch-optimizer) is absent"
)


def recipe(**changes):
    return Recipe(**{"batch_size": 32, "lr": 0.1, "epochs": 1, **changes})


def network():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 1))


def groups_by_name(optimizer):
    return {group["name"]: group for group in optimizer.param_groups}


@pytest.mark.parametrize(
    ("name", "expected_type"),
    [
        ("sgd", lambda: torch.optim.SGD),
        ("adam", lambda: torch.optim.Adam),
        ("adamw", lambda: torch.optim.AdamW),
        ("adagrad", lambda: torch.optim.Adagrad),
        pytest.param("lars", lambda: pytorch_optimizer.LARS, marks=needs_lars_extra),
        pytest.param("lamb", lambda: date.BiasCorrectedLamb, marks=needs_lars_extra),
    ],
)
def test_param_groups_exclude_vectors_from_weight_decay(name, expected_type):
    module = network()
    optimizer = build_optimizer(module, recipe(optimizer=name, weight_decay=5e-4))
    assert type(optimizer) is expected_type()
    groups = groups_by_name(optimizer)
    assert set(groups) == {WEIGHTS_GROUP, NO_WEIGHT_DECAY_GROUP}
    weights = {id(module[0].weight), id(module[2].weight)}
    vectors = {id(module[0].bias), id(module[1].weight), id(module[1].bias), id(module[2].bias)}
    assert {id(p) for p in groups[WEIGHTS_GROUP]["params"]} == weights
    assert {id(p) for p in groups[NO_WEIGHT_DECAY_GROUP]["params"]} == vectors
    assert groups[WEIGHTS_GROUP]["weight_decay"] == 5e-4
    assert groups[NO_WEIGHT_DECAY_GROUP]["weight_decay"] == 0.0
    # LAMB's layer adaptation is off for vectors (pytorch_optimizer's per-group "adam" flag).
    assert groups[NO_WEIGHT_DECAY_GROUP].get("adam", False) is (name == "lamb")
    assert all(group["lr"] == 0.1 for group in optimizer.param_groups)


def test_accepts_module_parameters_and_named_parameters():
    module = network()
    module[1].weight.requires_grad_(False)  # frozen parameters are left out
    built = [
        build_optimizer(module, recipe()),
        build_optimizer(module.parameters(), recipe()),
        build_optimizer(list(module.named_parameters()), recipe()),
        build_optimizer([*module.parameters(), module[0].weight], recipe()),  # duplicates dropped
    ]
    for optimizer in built:
        sizes = {name: len(group["params"]) for name, group in groups_by_name(optimizer).items()}
        assert sizes == {WEIGHTS_GROUP: 2, NO_WEIGHT_DECAY_GROUP: 3}


def test_only_vectors_gives_one_group():
    optimizer = build_optimizer([torch.nn.Parameter(torch.ones(3))], recipe())
    assert [group["name"] for group in optimizer.param_groups] == [NO_WEIGHT_DECAY_GROUP]


def test_bad_parameters():
    with pytest.raises(TypeError, match="makes its own param groups"):
        build_optimizer([{"params": network().parameters()}], recipe())
    with pytest.raises(TypeError, match=r"expects an nn\.Module"):
        build_optimizer(torch.ones(2, requires_grad=True), recipe())
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer([], recipe())
    with pytest.raises(ValueError, match=r"recipe must be a date\.Recipe"):
        build_optimizer(network(), {"optimizer": "sgd"})


def test_unknown_optimizer_lists_the_choices():
    with pytest.raises(ValueError, match="optimizer must be one of 'sgd', 'adam', 'adamw'"):
        build_optimizer(network(), recipe(optimizer="rmsprop"))
    with pytest.raises(ValueError, match="nesterov=True requires momentum > 0"):
        build_optimizer(network(), recipe(nesterov=True))


@pytest.mark.parametrize(
    ("name", "lr", "extra"),
    [
        ("sgd", 0.1, {"momentum": 0.9}),
        ("sgd", 0.1, {"momentum": 0.9, "nesterov": True}),
        ("adam", 0.05, {}),
        ("adamw", 0.05, {"weight_decay": 0.01}),
        ("adagrad", 0.2, {}),
        pytest.param(
            "lars",
            0.1,
            {"momentum": 0.9, "weight_decay": 1e-4, "trust_coefficient": 0.1},
            marks=needs_lars_extra,
        ),
        pytest.param("lamb", 0.05, {"weight_decay": 0.01}, marks=needs_lars_extra),
    ],
)
def test_each_optimizer_reduces_a_quadratic_loss(name, lr, extra):
    torch.manual_seed(0)
    module = torch.nn.Linear(4, 2)
    inputs, targets = torch.randn(16, 4), torch.randn(16, 2)
    optimizer = build_optimizer(module, recipe(optimizer=name, lr=lr, **extra))
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = (module(inputs) - targets).pow(2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # Least squares optimum is 0.78 here, from 1.49 at the start.
    assert losses[-1] < 0.9 * losses[0]


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_weight_decay_reaches_matrices_only(name):
    # Zero gradient, lr 0.1, weight decay 0.5: SGD adds 0.5 w to the gradient and AdamW multiplies
    # by 1 - 0.1 * 0.5 (Adam's update of a zero gradient is 0), so matrices scale by 0.95 and
    # vectors do not move.
    weight = torch.nn.Parameter(torch.full((2, 2), 2.0, dtype=torch.float64))
    bias = torch.nn.Parameter(torch.full((2,), 2.0, dtype=torch.float64))
    optimizer = build_optimizer([weight, bias], recipe(optimizer=name, weight_decay=0.5))
    weight.grad, bias.grad = torch.zeros_like(weight), torch.zeros_like(bias)
    optimizer.step()
    assert torch.allclose(weight, torch.full((2, 2), 1.9, dtype=torch.float64), rtol=1e-14)
    assert torch.equal(bias, torch.full((2,), 2.0, dtype=torch.float64))


def tensor(values):
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float64))


def step(optimizer, parameters_and_gradients):
    for parameter, gradient in parameters_and_gradients:
        parameter.grad = torch.tensor(gradient, dtype=torch.float64)
    optimizer.step()


def close(parameter, expected, rtol=1e-12):
    return torch.allclose(
        parameter.detach(), torch.tensor(expected, dtype=torch.float64), rtol=rtol
    )


def test_sgd_momentum_two_steps_by_hand():
    # torch.optim.SGD: d = g + wd w; buf = momentum buf + d; w -= lr buf. lr 0.5, mu 0.9, wd 0.1.
    weight, bias = tensor([[1.0, -2.0]]), tensor([1.0])
    optimizer = build_optimizer([weight, bias], recipe(lr=0.5, momentum=0.9, weight_decay=0.1))
    step(optimizer, [(weight, [[0.5, 0.5]]), (bias, [0.5])])
    # d1 = [0.5 + 0.1, 0.5 - 0.2] = [0.6, 0.3]; w1 = [1 - 0.3, -2 - 0.15] = [0.7, -2.15]
    assert close(weight, [[0.7, -2.15]])
    assert close(bias, [0.75])  # 1 - 0.5 * 0.5, no weight decay on the bias
    step(optimizer, [(weight, [[-1.0, 0.0]]), (bias, [0.5])])
    # d2 = [-1 + 0.07, -0.215]; buf = 0.9 [0.6, 0.3] + d2 = [-0.39, 0.055];
    # w2 = [0.7 + 0.195, -2.15 - 0.0275] = [0.895, -2.1775]
    assert close(weight, [[0.895, -2.1775]])
    assert close(bias, [0.275])  # buf = 0.9 * 0.5 + 0.5 = 0.95; 0.75 - 0.475


def test_sgd_nesterov_two_steps_by_hand():
    # Nesterov in torch.optim.SGD: buf = mu buf + d; w -= lr (d + mu buf).
    weight = tensor([[1.0, -2.0]])
    optimizer = build_optimizer(
        [weight], recipe(lr=0.5, momentum=0.9, nesterov=True, weight_decay=0.1)
    )
    step(optimizer, [(weight, [[0.5, 0.5]])])
    # d1 = [0.6, 0.3] = buf; update 1.9 d1 = [1.14, 0.57]; w1 = [1 - 0.57, -2 - 0.285]
    assert close(weight, [[0.43, -2.285]])
    step(optimizer, [(weight, [[-1.0, 0.0]])])
    # d2 = [-1 + 0.043, -0.2285] = [-0.957, -0.2285]; buf = [0.54 - 0.957, 0.27 - 0.2285]
    # = [-0.417, 0.0415]; update = d2 + 0.9 buf = [-1.3323, -0.19115];
    # w2 = [0.43 + 0.66615, -2.285 + 0.095575] = [1.09615, -2.189425]
    assert close(weight, [[1.09615, -2.189425]])


def lars_local_lr(weight, gradient, weight_decay, trust_coefficient):
    """LARS local lr (You et al. 2017, Algorithm 1): eta ||w|| / (||g|| + beta ||w||)."""
    weight_norm = math.hypot(*weight)
    return trust_coefficient * weight_norm / (math.hypot(*gradient) + weight_decay * weight_norm)


@pytest.mark.parametrize("foreach", [None, False])
@needs_lars_extra
def test_lars_two_steps_by_hand(foreach):
    # gamma (lr) 2, m 0.9, beta (weight decay) 0.01, eta (trust coefficient) 0.001.
    lr, momentum, weight_decay, trust = 2.0, 0.9, 0.01, 0.001
    weight, bias = tensor([[3.0, 4.0]]), tensor([1.0, -1.0])
    optimizer = build_optimizer(
        [weight, bias],
        recipe(
            optimizer="lars",
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            trust_coefficient=trust,
        ),
    )
    for group in optimizer.param_groups:
        group["foreach"] = foreach  # None: pytorch_optimizer's batched path on CPU
    step(optimizer, [(weight, [[0.6, -0.8]]), (bias, [0.5, 0.25])])
    # lambda1 = 0.001 * 5 / (1 + 0.01 * 5) = 1 / 210; v1 = 2 / 210 * ([0.6, -0.8] + 0.01 [3, 4])
    # = [1.26 / 210, -1.52 / 210] = [0.006, -0.0072380952...]; w1 = w0 - v1.
    assert close(weight, [[2.994, 4.0 + 1.52 / 210]])
    # Vectors: plain momentum SGD, no trust ratio, no weight decay: b1 = b0 - 2 g.
    assert close(bias, [0.0, -1.5])

    w1, g1, g2 = [2.994, 4.0 + 1.52 / 210], [0.6, -0.8], [0.0, 1.0]
    v1 = [2.0 / 210 * (g + weight_decay * w) for g, w in zip(g1, [3.0, 4.0], strict=True)]
    local = lars_local_lr(w1, g2, weight_decay, trust)
    v2 = [
        momentum * v + lr * local * (g + weight_decay * w)
        for v, g, w in zip(v1, g2, w1, strict=True)
    ]
    step(optimizer, [(weight, [g2]), (bias, [0.5, 0.25])])
    assert close(weight, [[w - v for w, v in zip(w1, v2, strict=True)]])
    # b2 = b1 - 2 (0.9 g + g) = [0 - 1.9, -1.5 - 0.95]
    assert close(bias, [-1.9, -2.45])


@needs_lars_extra
def test_lars_keeps_the_learning_rate_outside_the_momentum_buffer():
    """When lr changes between steps, pytorch_optimizer's LARS follows torch.optim.SGD.

    The LARS paper accumulates v = m v + gamma lambda d and steps w -= v, so an lr change reaches
    only the new term; pytorch_optimizer accumulates buf = m buf + lambda d and steps w -= gamma buf
    (Goyal et al. 2017, section 2.2, call the correction between the two "momentum correction").
    Both agree for a constant lr (checked above); this pins the convention for a changing lr.
    """
    momentum, weight_decay, trust = 0.9, 0.0, 0.001
    weight = tensor([[3.0, 4.0]])
    optimizer = build_optimizer(
        [weight], recipe(optimizer="lars", lr=2.0, momentum=momentum, trust_coefficient=trust)
    )
    step(optimizer, [(weight, [[0.6, -0.8]])])
    # lambda1 = 0.001 * 5 / 1 = 0.005; buf1 = 0.005 [0.6, -0.8]; w1 = w0 - 2 buf1
    buffer1 = [0.003, -0.004]
    w1 = [3.0 - 0.006, 4.0 + 0.008]
    assert close(weight, [w1])
    optimizer.param_groups[0]["lr"] = 1.0
    step(optimizer, [(weight, [[0.0, 1.0]])])
    local = lars_local_lr(w1, [0.0, 1.0], weight_decay, trust)
    buffer2 = [momentum * b + local * g for b, g in zip(buffer1, [0.0, 1.0], strict=True)]
    assert close(weight, [[w - 1.0 * b for w, b in zip(w1, buffer2, strict=True)]])
    paper = [
        w - (momentum * 2.0 * b + 1.0 * local * g)
        for w, b, g in zip(w1, buffer1, [0, 1], strict=True)
    ]
    assert not close(weight, [paper])


def lamb_update(weight, moments, gradient, step_number, weight_decay, eps, betas=(0.9, 0.999)):
    """r + lambda x of LAMB (You et al. 2020, Algorithm 2), updating `moments` in place."""
    beta1, beta2 = betas
    update = []
    for index, (w, g) in enumerate(zip(weight, gradient, strict=True)):
        m, v = moments[index]
        m, v = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g * g
        moments[index] = (m, v)
        m_hat, v_hat = m / (1 - beta1**step_number), v / (1 - beta2**step_number)
        update.append(m_hat / (math.sqrt(v_hat) + eps) + weight_decay * w)
    return update


def lamb_step(weight, moments, gradient, step_number, lr, weight_decay, eps, adapt=True):
    update = lamb_update(weight, moments, gradient, step_number, weight_decay, eps)
    # phi(z) = min(z, 10) (pytorch_optimizer's clamp); trust ratio phi(||x||) / ||r + lambda x||.
    ratio = min(math.hypot(*weight), 10.0) / math.hypot(*update) if adapt else 1.0
    return [w - lr * ratio * u for w, u in zip(weight, update, strict=True)]


@needs_lars_extra
def test_lamb_two_steps_by_hand():
    lr, weight_decay, eps = 0.01, 0.01, 1e-6
    weight, bias = tensor([[3.0, 4.0]]), tensor([1.0, -1.0])
    optimizer = build_optimizer(
        [weight, bias], recipe(optimizer="lamb", lr=lr, weight_decay=weight_decay, eps=eps)
    )
    weight_moments, bias_moments = [(0.0, 0.0)] * 2, [(0.0, 0.0)] * 2
    w0, b0 = [3.0, 4.0], [1.0, -1.0]

    step(optimizer, [(weight, [[0.6, -0.8]]), (bias, [0.5, 0.25])])
    w1 = lamb_step(w0, weight_moments, [0.6, -0.8], 1, lr, weight_decay, eps)
    b1 = lamb_step(b0, bias_moments, [0.5, 0.25], 1, lr, 0.0, eps, adapt=False)
    assert close(weight, [w1])
    # The trust ratio makes the step lr * phi(||w||) = 0.01 * 5 = 0.05 long.
    assert math.dist(w1, w0) == pytest.approx(0.05, rel=1e-12)
    # Vectors: Adam with bias correction, no trust ratio: m_hat = g, v_hat = g^2, so the step is
    # 0.01 * g / (|g| + 1e-6): b1 = [1 - 0.01 * 0.5 / 0.500001, -1 - 0.01 * 0.25 / 0.250001].
    assert close(bias, [b1])
    assert close(bias, [0.99000002, -1.00999996], rtol=1e-8)  # 0.005 / 0.500001 = 0.00999998

    step(optimizer, [(weight, [[0.0, 1.0]]), (bias, [0.5, 0.25])])
    w2 = lamb_step(w1, weight_moments, [0.0, 1.0], 2, lr, weight_decay, eps)
    b2 = lamb_step(b1, bias_moments, [0.5, 0.25], 2, lr, 0.0, eps, adapt=False)
    assert close(weight, [w2])
    assert close(bias, [b2])
    assert math.dist(w2, w1) == pytest.approx(lr * math.hypot(*w1), rel=1e-12)


@needs_lars_extra
def test_lamb_trust_ratio_is_capped_at_10():
    # ||w|| = 50 > 10: the step is lr * 10 = 0.1 long instead of lr * 50.
    weight = tensor([[30.0, 40.0]])
    optimizer = build_optimizer([weight], recipe(optimizer="lamb", lr=0.01))
    step(optimizer, [(weight, [[0.6, -0.8]])])
    assert math.dist(weight.detach()[0].tolist(), [30.0, 40.0]) == pytest.approx(0.1, rel=1e-12)


@needs_lars_extra
def test_pytorch_optimizer_lamb_deviates_from_the_paper():
    """Why `BiasCorrectedLamb` exists (pytorch_optimizer 4.1.0 Lamb, default settings).

    Its step size is lr / (1 - beta1^t) while v is never corrected, so with the trust ratio the
    first step is lr / (1 - 0.9) * ||w|| = 0.01 * 10 * 5 = 0.5 long, 10x the paper's 0.05. If this
    starts failing, the library changed: re-check it against the paper and maybe drop the subclass.
    """
    weight = tensor([[3.0, 4.0]])
    optimizer = pytorch_optimizer.Lamb([weight], lr=0.01, eps=1e-6)
    step(optimizer, [(weight, [[0.6, -0.8]])])
    assert math.dist(weight.detach()[0].tolist(), [3.0, 4.0]) == pytest.approx(0.5, rel=1e-5)


def test_lars_and_lamb_without_the_extra_name_the_install(monkeypatch):
    # sys.modules[name] = None makes `import name` raise ImportError, as when it is not installed.
    monkeypatch.setitem(sys.modules, "pytorch_optimizer", None)
    for name in ("lars", "lamb"):
        with pytest.raises(ImportError, match=r"pip install 'date-legw\[lars\]'"):
            build_optimizer(network(), recipe(optimizer=name))
    assert type(build_optimizer(network(), recipe())) is torch.optim.SGD


def test_the_library_imports_and_builds_sgd_without_the_extra():
    """A fresh interpreter without pytorch_optimizer imports every non-extra module of `date`."""
    script = (
        "import sys; sys.modules['pytorch_optimizer'] = None\n"
        "import torch, date, date.optim, date.scheduler\n"
        "model = torch.nn.Linear(2, 1)\n"
        "recipe = date.Recipe(batch_size=32, lr=0.1, epochs=1)\n"
        "print(type(date.build_optimizer(model, recipe)).__name__)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "SGD"
