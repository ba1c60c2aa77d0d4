"""The optional per-candidate progress bar of ``nas.train.fit``: off by default, changes nothing about the training."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

import nas.train as train
from nas.train import PROGRESS_MIN_STEPS, PROGRESS_UPDATES, TrainerConfig, fit


class Regression(torch.nn.Module):
    """The smallest model with the interface fit expects: forward(**batch).loss."""

    def __init__(self, nan_at: int | None = None):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)
        self.calls, self.nan_at = 0, nan_at

    def forward(self, x, y):
        self.calls += 1
        loss = torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), y)
        return SimpleNamespace(loss=loss * math.nan if self.calls == self.nan_at else loss)


def batches(seed=0):
    generator = torch.Generator().manual_seed(seed)
    while True:
        x = torch.randn(8, 4, generator=generator)
        yield {"x": x, "y": x.sum(-1)}


def run(steps, nan_at=None, **kwargs):
    torch.manual_seed(0)
    model = Regression(nan_at)
    config = TrainerConfig(log_every=10, **{k: kwargs.pop(k) for k in ("progress_bar",) if k in kwargs})
    losses, _ = fit(model, batches(), steps, 1e-2, config, **kwargs)
    return model, losses


class RecordingBar:
    """Stands in for tqdm: keeps its arguments and every update."""

    made: list[RecordingBar] = []

    def __init__(self, **kwargs):
        self.kwargs, self.n, self.updates, self.postfix, self.closed = kwargs, 0, [], None, False
        RecordingBar.made.append(self)

    def update(self, n):
        self.n += n
        self.updates.append(n)

    def set_postfix(self, refresh=True, **kwargs):
        self.postfix = kwargs

    def close(self):
        self.closed = True


@pytest.fixture
def recording(monkeypatch):
    RecordingBar.made = []
    monkeypatch.setattr(train, "tqdm", RecordingBar)
    return RecordingBar.made


def test_off_by_default_and_silent(capsys, recording):
    assert TrainerConfig().progress_bar is False
    run(PROGRESS_MIN_STEPS * 2)
    assert recording == []
    assert capsys.readouterr().err == ""


def test_the_bar_does_not_change_the_training():
    _, without = run(120)
    _, with_bar = run(120, progress=True)
    assert with_bar == without


def test_bar_sits_under_the_search_bar_and_counts_every_step(recording):
    steps = 250
    _, losses = run(steps, progress_bar=True)  # asked for through the config
    (bar,) = recording
    assert bar.kwargs["total"] == steps and bar.kwargs["leave"] is False and bar.kwargs["position"] == 1
    assert bar.kwargs["delay"] == train.PROGRESS_DELAY_S > 0  # brief trainings never show it
    assert bar.n == steps and bar.closed
    every = math.ceil(steps / PROGRESS_UPDATES)
    assert bar.updates[:-1] == [every] * (len(bar.updates) - 1) and len(bar.updates) <= PROGRESS_UPDATES + 1  # not every step
    assert bar.postfix == {"loss": f"{losses[-1][1]:.4g}"}


def test_short_trainings_get_no_bar_and_the_argument_beats_the_config(recording):
    run(PROGRESS_MIN_STEPS - 1, progress=True)
    run(PROGRESS_MIN_STEPS * 2, progress=False, progress_bar=True)
    assert recording == []
    run(PROGRESS_MIN_STEPS, progress=True)
    assert len(recording) == 1


def test_no_bar_in_a_worker_process(recording, monkeypatch):
    import multiprocessing

    monkeypatch.setattr(multiprocessing, "parent_process", lambda: object())  # as in a process pool's worker
    run(PROGRESS_MIN_STEPS * 2, progress=True)
    assert recording == []


def test_the_bar_is_closed_when_training_fails_or_stops_early(recording):
    with pytest.raises(FloatingPointError):
        run(100, nan_at=30, progress=True)
    assert recording[-1].closed and recording[-1].n < 100
    _, losses = run(100, progress=True, checkpoints=[40], on_checkpoint=lambda step: False)
    assert losses[-1][0] == 40 and recording[-1].closed and recording[-1].n == 40


def test_the_bar_shows_on_stderr(capsys, monkeypatch):
    monkeypatch.setattr(train, "PROGRESS_DELAY_S", 0.0)
    run(PROGRESS_MIN_STEPS, progress=True, desc="candidate 3")
    err = capsys.readouterr().err
    assert "candidate 3" in err and f"0/{PROGRESS_MIN_STEPS}" in err


def test_config_key():
    from tests.conftest import compose_config

    assert compose_config(["trainer.progress_bar=true"]).trainer.progress_bar is True
    assert compose_config().trainer.progress_bar is False

