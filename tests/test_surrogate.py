"""The value ensemble's hand-written gradients and optimizer against PyTorch's autograd and Adam."""

import numpy as np
import torch

from nas.space import SearchSpace
from nas.surrogate import Adam, BatchedMLP, ValueEnsemble


def _torch_output(model: BatchedMLP, x: np.ndarray) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The same MLPs in torch, on copies of the parameters that autograd can differentiate."""
    params = [torch.tensor(p, requires_grad=True) for p in model.views(model.flat)]
    w1, b1, w2, b2 = params
    hidden = torch.relu(torch.from_numpy(x).unsqueeze(0) @ w1 + b1)
    return (hidden @ w2 + b2).squeeze(-1), params


def test_the_hand_written_backward_pass_is_autograds():
    rng = np.random.default_rng(0)
    model = BatchedMLP(members=3, in_size=7, hidden=5, generator=torch.Generator().manual_seed(0))
    model.b1[...] = rng.normal(size=model.b1.shape)  # nonzero biases, so every term of the gradient is exercised
    model.b2[...] = rng.normal(size=model.b2.shape)
    x = rng.normal(size=(11, 7)).astype(np.float32)
    weights = rng.poisson(1.0, size=(3, 11)).astype(np.float32)
    target = rng.normal(size=11).astype(np.float32)

    out, params = _torch_output(model, x)
    np.testing.assert_allclose(model(x), out.detach().numpy(), rtol=1e-5, atol=1e-6)
    loss = (torch.from_numpy(weights) * (out - torch.from_numpy(target)) ** 2).sum() / weights.sum()
    loss.backward()

    grad = np.zeros_like(model.flat)
    mine, z = model.forward(x)
    model.backward(x, z, 2 * weights * (mine - target) / weights.sum(), grad)
    for got, p in zip(model.views(grad), params, strict=True):
        np.testing.assert_allclose(got, p.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_adam_takes_torchs_steps():
    rng = np.random.default_rng(1)
    start = rng.normal(size=50).astype(np.float32)
    grads = rng.normal(size=(20, 50)).astype(np.float32)
    mine = start.copy()
    adam = Adam(mine, lr=0.02, weight_decay=1e-3)
    theirs = torch.tensor(start, requires_grad=True)
    reference = torch.optim.Adam([theirs], lr=0.02, weight_decay=1e-3)
    for g in grads:
        adam.step(g)
        theirs.grad = torch.from_numpy(g)
        reference.step()
        np.testing.assert_allclose(mine, theirs.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(mine, start)  # it moved: the comparison above is not of two untouched copies


def test_a_fit_is_reproducible_and_learns_the_training_points():
    space = SearchSpace.from_dict({"a": [1, 2, 3, 4], "b": [0.0, 0.1, 0.2], "c": ["x", "y"]})
    encodings = list(space.all_encodings())
    values = [float(a + 2 * b - (c == 1)) for a, b, c in encodings]
    first, second = ValueEnsemble(space), ValueEnsemble(space)
    assert first.fit(encodings, values, seed=3) == second.fit(encodings, values, seed=3)
    mean, std = first.predict(encodings)
    np.testing.assert_array_equal(mean, second.predict(encodings)[0])
    assert np.corrcoef(mean, values)[0, 1] > 0.95 and (std >= 0).all()
