"""Autoregressive rollouts with stand-in samplers whose trajectories are known exactly."""
import pytest
import torch

from flexcouple.evaluation.rollout import rollout, sample_fields


class Extrapolate:
    """x(t+1) = 2 x(t) - x(t-1) + noise * N(0, 1): reads the history in the documented order."""

    def __init__(self, noise=0.0, squeeze=False):
        self.noise, self.squeeze, self.calls = noise, squeeze, []

    def sample(self, condition, reynolds, steps=2, ensemble=1, generator=None, task="superres"):
        self.calls.append((tuple(condition.shape), task, steps))
        assert task == "forecast" and reynolds.shape == (condition.shape[0],)
        nxt = 2 * condition[:, -1] - condition[:, -2]
        out = nxt[:, None, None].repeat(1, ensemble, 1, 1, 1)
        if self.noise:
            out = out + self.noise * torch.randn(out.shape, generator=generator)
        return out[:, :, 0] if self.squeeze else out


def _history(b=2, n=8):
    base = torch.randn(b, 1, n, n, generator=torch.Generator().manual_seed(0))
    return torch.cat([base, base + 1.0], dim=1)  # oldest first: x(-1) = base, x(0) = base + 1


@pytest.mark.parametrize("squeeze", [False, True])
def test_mean_feedback_follows_the_exact_trajectory(squeeze):
    hist = _history()
    r = rollout(Extrapolate(squeeze=squeeze), hist, torch.tensor([1000.0, 2000.0]), 5, ensemble=3)
    assert r.members.shape == (2, 5, 3, 8, 8) and r.mean.shape == (2, 5, 8, 8)
    for t in range(5):  # x(t) = base + 1 + t, so forecast step t (t+1 ahead) is base + 2 + t
        torch.testing.assert_close(r.mean[:, t], hist[:, 0] + 2.0 + t)
    assert torch.all(r.std == 0)


def test_member_feedback_spreads_like_a_random_walk_and_mean_feedback_does_not():
    hist = _history(b=1, n=16)
    k, steps = 64, 6
    model = Extrapolate(noise=0.1)
    g = torch.Generator().manual_seed(1)
    by_mean = rollout(model, hist, torch.tensor([1000.0]), steps, ensemble=k, generator=g, feed="mean")
    by_member = rollout(model, hist, torch.tensor([1000.0]), steps, ensemble=k, generator=g, feed="members")
    spread_mean = by_mean.std.pow(2).mean(dim=(0, 2, 3))
    spread_member = by_member.std.pow(2).mean(dim=(0, 2, 3))
    # feeding the mean back: each step's spread is the one-step noise, 0.01
    torch.testing.assert_close(spread_mean, torch.full((steps,), 0.01), rtol=0.15, atol=0)
    # independent members of x(t+1) = 2x(t) - x(t-1) + e: the error variance grows like
    # sum_j (j+1)^2 sigma^2, i.e. 1, 5, 14, 30, ... times 0.01
    expected = torch.tensor([sum((j + 1) ** 2 for j in range(t + 1)) * 0.01 for t in range(steps)])
    torch.testing.assert_close(spread_member, expected, rtol=0.2, atol=0)
    assert model.calls[-1][0] == (k, 2, 16, 16)  # members travel as a batch of B*K histories


def test_rollout_is_reproducible_with_a_generator():
    hist = _history()
    run = lambda: rollout(Extrapolate(noise=0.5), hist, torch.tensor([1.0, 2.0]), 3, ensemble=2,  # noqa: E731
                          generator=torch.Generator().manual_seed(7)).members
    torch.testing.assert_close(run(), run(), rtol=0, atol=0)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r"\(B, past, H, W\)"):
        rollout(Extrapolate(), torch.zeros(2, 8, 8), torch.ones(2), 3)
    with pytest.raises(ValueError, match="feed"):
        rollout(Extrapolate(), _history(), torch.ones(2), 3, feed="median")

    class Wrong:
        def sample(self, condition, reynolds, **kw):
            return torch.zeros(condition.shape[0], 3, 2, 8, 8)

    with pytest.raises(ValueError, match="returned shape"):
        sample_fields(Wrong(), _history(), torch.ones(2), steps=2, ensemble=3, generator=None, task="forecast")
