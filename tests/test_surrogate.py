"""The value ensemble's hand-written gradients against autograd: the same floats, so the same searches."""

import numpy as np
import torch

from nas.space import SearchSpace
from nas.surrogate import ValueEnsemble, _BatchedMLP

SPACE = SearchSpace.from_dict({"a": [1, 2, 3, 4], "b": [0.0, 0.1, 0.2], "c": ["x", "y"], "d": [16, 32, 64]})


def _problem(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    encodings = [tuple(int(rng.integers(k)) for k in SPACE.sizes) for _ in range(n)]
    values = rng.normal(size=n).tolist()
    return encodings, values


def _fit_by_autograd(ensemble: ValueEnsemble, encodings, values, seed: int) -> tuple[_BatchedMLP, torch.Tensor]:
    """The fit as autograd would run it: the loss, backward(), Adam; the fitted model and its initial w1."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(ensemble.features(encodings))
    y = torch.tensor(values, dtype=torch.float32)
    target = (y - float(y.mean())) / (float(y.std(unbiased=False)) or 1.0)
    weights = torch.poisson(torch.ones(ensemble.members, len(y)), generator=generator)
    model = _BatchedMLP(ensemble.members, x.shape[1], ensemble.hidden, generator)
    initial_w1 = model.w1.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=ensemble.learning_rate, weight_decay=ensemble.weight_decay, fused=True)
    for _ in range(ensemble.steps):
        loss = (weights * (model(x) - target) ** 2).sum() / weights.sum().clamp(min=1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, initial_w1


def test_the_hand_written_gradients_are_autograds_to_the_last_bit():
    model = _BatchedMLP(members=3, in_size=7, hidden=5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # nonzero biases, so every term of the gradient is exercised
        model.b1.normal_(generator=torch.Generator().manual_seed(1))
        model.b2.normal_(generator=torch.Generator().manual_seed(2))
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(11, 7)).astype(np.float32))
    weights = torch.from_numpy(rng.poisson(1.0, size=(3, 11)).astype(np.float32))
    target = torch.from_numpy(rng.normal(size=11).astype(np.float32))

    loss = (weights * (model(x) - target) ** 2).sum() / weights.sum()
    loss.backward()
    mine = model.gradients(x, target, (torch.ones(()) / weights.sum()) * weights)
    for got, param in zip(mine, model.parameters(), strict=True):
        assert got.shape == param.shape and torch.equal(got, param.grad)


def test_a_fit_is_autograds_fit_to_the_last_bit():
    # Over whole fits, with as few points as a search's first fit and as many as a long one's.
    for n in (4, 40, 120):
        encodings, values = _problem(n, seed=n)
        ensemble = ValueEnsemble(SPACE, steps=20)
        ensemble.fit(encodings, values, seed=n)
        reference, initial_w1 = _fit_by_autograd(ensemble, encodings, values, seed=n)
        for mine, theirs in zip(ensemble.model.parameters(), reference.parameters(), strict=True):
            assert torch.equal(mine, theirs), n
        assert not torch.equal(reference.w1, initial_w1)  # the fit moved the weights: the comparison is not of two inits


def test_a_fit_is_reproducible_and_learns_the_training_points():
    encodings = list(SPACE.all_encodings())
    values = [float(a + 2 * b - (c == 1) + d / 4) for a, b, c, d in encodings]
    first, second = ValueEnsemble(SPACE), ValueEnsemble(SPACE)
    assert first.fit(encodings, values, seed=3) == second.fit(encodings, values, seed=3)
    mean, std = first.predict(encodings)
    np.testing.assert_array_equal(mean, second.predict(encodings)[0])
    assert np.corrcoef(mean, values)[0, 1] > 0.95 and (std >= 0).all()
