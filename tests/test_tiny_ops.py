"""nas.tiny_ops and nas.ppo.forward_mlp do what torch's own calls do, to the last bit: PPO's and the value ensemble's
searches depend on every float, and tests/test_recorded_history.py only sees the end of a long search."""

import copy

import pytest
import torch

from nas.ppo import PolicyNetwork, ValueNetwork, forward_mlp
from nas.tiny_ops import adam_step, clip_grad_norm_, make_adam


def twin_networks(seed: int):
    """Two identical (policy, value) pairs."""
    pairs = []
    for _ in range(2):
        torch.manual_seed(seed)
        pairs.append((PolicyNetwork(12, 7, hidden=16), ValueNetwork(12, hidden=16)))
    return pairs


def params_of(pair):
    return [p for net in pair for p in net.parameters()]


def losses(pair, obs, mask, actions, returns):
    policy, value = pair
    dist = policy.distribution(obs, mask)
    return -(dist.log_prob(actions).mean()) - 0.01 * dist.entropy().mean() + 0.5 * ((value(obs) - returns) ** 2).mean()


@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_adam_step_and_clipping_give_torchs_floats_over_many_steps(weight_decay):
    ours, theirs = twin_networks(seed=3)
    opt_ours = make_adam(params_of(ours), lr=3e-3, eps=1e-5, weight_decay=weight_decay)
    opt_theirs = torch.optim.Adam(params_of(theirs), lr=3e-3, eps=1e-5, weight_decay=weight_decay, fused=True)
    gen = torch.Generator().manual_seed(0)
    for step in range(25):
        obs = torch.randn(40, 12, generator=gen)
        mask = torch.rand(40, 7, generator=gen) > 0.3
        mask[:, -1] = True
        actions = torch.multinomial(mask.float(), 1, generator=gen).squeeze(1)
        returns = torch.randn(40, generator=gen) * (10.0 if step % 5 == 0 else 0.1)  # some steps clip, some do not
        for pair, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            losses(pair, obs, mask, actions, returns).backward()
        clip_grad_norm_([p.grad for p in params_of(ours)], 0.5)
        torch.nn.utils.clip_grad_norm_(params_of(theirs), 0.5, foreach=True)
        for a, b in zip(params_of(ours), params_of(theirs), strict=True):
            assert torch.equal(a.grad, b.grad)
        adam_step(opt_ours)
        opt_theirs.step()
        for a, b in zip(params_of(ours), params_of(theirs), strict=True):
            assert torch.equal(a, b), f"step {step}"
    for a, b in zip(opt_ours.state_dict()["state"].values(), opt_theirs.state_dict()["state"].values(), strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


def test_adam_step_goes_on_from_a_loaded_state_like_torchs():
    """A checkpoint saved by torch's step and loaded again (resume) continues bit for bit, and the other way round."""
    ours, theirs = twin_networks(seed=5)
    opt_theirs = torch.optim.Adam(params_of(theirs), lr=1e-2, eps=1e-5, fused=True)
    for _ in range(3):
        opt_theirs.zero_grad()
        sum((p ** 2).sum() for p in params_of(theirs)).backward()
        opt_theirs.step()
    for a, b in zip(params_of(ours), params_of(theirs), strict=True):
        a.data.copy_(b.data)
    opt_ours = make_adam(params_of(ours), lr=1e-2, eps=1e-5)
    opt_ours.load_state_dict(copy.deepcopy(opt_theirs.state_dict()))  # as from a checkpoint file: no tensor shared
    for _ in range(3):
        for pair, opt, step in ((ours, opt_ours, adam_step), (theirs, opt_theirs, torch.optim.Adam.step)):
            opt.zero_grad()
            sum((p ** 3).sum() for p in params_of(pair)).backward()
            step(opt)
    for a, b in zip(params_of(ours), params_of(theirs), strict=True):
        assert torch.equal(a, b)


def test_forward_mlp_is_the_sequentials_call_with_the_same_gradients():
    torch.manual_seed(0)
    net = PolicyNetwork(9, 5, hidden=8).net
    x = torch.randn(17, 9)
    out_ours, out_theirs = forward_mlp(net, x), net(x)
    assert torch.equal(out_ours, out_theirs)
    grads = [torch.autograd.grad(out.square().sum(), list(net.parameters())) for out in (out_ours, out_theirs)]
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))
