"""The PPO functions against numbers computed by hand."""

import math

import pytest
import torch

from nas.ppo import MaskedCategorical, clipped_policy_loss, explained_variance, gae, next_values, normalize, value_loss

# One episode of 3 steps then a 1-step episode: r, V(s), done.
REWARDS = torch.tensor([1.0, 0.0, 2.0, 0.5])
VALUES = torch.tensor([0.5, 1.0, 1.5, 0.2])
DONES = torch.tensor([0.0, 0.0, 1.0, 1.0])
NEXT_VALUES = torch.tensor([1.0, 1.5, 0.0, 0.0])  # V(s_{t+1}) within each episode
GAMMA = 0.9


def test_next_values_bootstrap_within_each_episode_only():
    # The episodes lie end to end: V(s_{t+1}) is the next entry's value, 0 after an episode's last step.
    torch.testing.assert_close(next_values(VALUES, DONES), NEXT_VALUES)


def test_gae_lambda_one_is_monte_carlo_return_minus_value():
    adv, ret = gae(REWARDS, VALUES, DONES, NEXT_VALUES, GAMMA, 1.0)
    # Returns: G2 = 2, G1 = 0 + 0.9*2 = 1.8, G0 = 1 + 0.9*1.8 = 2.62, and the next episode G3 = 0.5.
    torch.testing.assert_close(ret, torch.tensor([2.62, 1.8, 2.0, 0.5]))
    torch.testing.assert_close(adv, torch.tensor([2.62 - 0.5, 1.8 - 1.0, 2.0 - 1.5, 0.5 - 0.2]))


def test_gae_lambda_zero_is_one_step_bellman_residual():
    adv, _ = gae(REWARDS, VALUES, DONES, NEXT_VALUES, GAMMA, 0.0)
    # delta_t = r_t + gamma V(s_{t+1}) (1 - done_t) - V(s_t)
    expected = torch.tensor([1 + 0.9 * 1.0 - 0.5, 0 + 0.9 * 1.5 - 1.0, 2 - 1.5, 0.5 - 0.2])
    torch.testing.assert_close(adv, expected)


def test_gae_intermediate_lambda_by_hand():
    adv, _ = gae(REWARDS, VALUES, DONES, NEXT_VALUES, GAMMA, 0.5)
    d0, d1, d2 = 1.4, 0.35, 0.5
    a2 = d2
    a1 = d1 + 0.9 * 0.5 * a2
    a0 = d0 + 0.9 * 0.5 * a1
    torch.testing.assert_close(adv, torch.tensor([a0, a1, a2, 0.3]))


def test_clipped_policy_loss_by_hand():
    old = torch.log(torch.tensor([0.5, 0.5]))
    new = torch.log(torch.tensor([0.8, 0.3]))  # ratios 1.6 and 0.6
    adv = torch.tensor([1.0, -1.0])
    out = clipped_policy_loss(new, old, adv, clip_coef=0.2)
    # Sample 0: max(-1.6, -1.2) = -1.2; sample 1: max(0.6, 0.8) = 0.8 -> mean -0.2.
    assert out.loss.item() == pytest.approx(-0.2)
    assert out.clipfrac.item() == 1.0
    kl = ((1.6 - 1) - math.log(1.6) + (0.6 - 1) - math.log(0.6)) / 2
    assert out.approx_kl.item() == pytest.approx(kl, rel=1e-5)


def test_unclipped_ratio_gives_plain_policy_gradient_objective():
    logp = torch.log(torch.tensor([0.5]))
    out = clipped_policy_loss(logp, logp, torch.tensor([2.0]), clip_coef=0.2)
    assert out.loss.item() == pytest.approx(-2.0) and out.clipfrac.item() == 0.0 and out.approx_kl.item() == 0.0


def test_value_loss_explained_variance_and_normalize():
    assert value_loss(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 4.0])).item() == pytest.approx(0.5 * (1 + 4) / 2)
    target = torch.tensor([1.0, 2.0, 3.0])
    assert explained_variance(target, target) == pytest.approx(1.0)
    assert explained_variance(torch.full((3,), 2.0), target) == pytest.approx(0.0)
    assert math.isnan(explained_variance(target, torch.ones(3)))
    n = normalize(torch.tensor([1.0, 2.0, 3.0]))
    assert n.mean().item() == pytest.approx(0.0, abs=1e-6) and n.std().item() == pytest.approx(1.0, abs=1e-5)


def test_masked_categorical_matches_torch_categorical():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 7, generator=generator) * 3
    mask = torch.rand(50, 7, generator=generator) > 0.4
    mask[:, -1] = True  # every row keeps an action
    actions = torch.multinomial(mask.float(), 1, generator=generator).squeeze(1)
    ours = MaskedCategorical(logits, mask)
    reference = torch.distributions.Categorical(logits=logits.masked_fill(~mask, -1e9))
    torch.testing.assert_close(ours.probs, reference.probs)
    torch.testing.assert_close(ours.log_prob(actions), reference.log_prob(actions))
    torch.testing.assert_close(ours.entropy(), reference.entropy())
    assert (ours.probs[~mask] == 0).all()  # a masked action is never sampled
    torch.testing.assert_close(ours.probs.sum(-1), torch.ones(50))


def test_masked_categorical_gradient_matches_torch_categorical():
    logits = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(8, 5, dtype=torch.bool)
    mask[::2, 0] = False
    actions = torch.tensor([1, 2, 3, 4, 1, 2, 3, 4])
    grads = []
    for make in (lambda x: MaskedCategorical(x, mask), lambda x: torch.distributions.Categorical(logits=x.masked_fill(~mask, -1e9))):
        x = logits.clone().requires_grad_()
        dist = make(x)
        (dist.log_prob(actions).sum() + 0.1 * dist.entropy().sum()).backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1])
