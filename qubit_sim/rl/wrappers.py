"""Wrappers for the site environments."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from qubit_sim.rl.reward import REWARD_TERMS

__all__ = ["EpisodeCosts"]

_SUMMED = (*REWARD_TERMS, "import_kwh", "export_kwh", "co2_kg", "unmet_kwh")


class EpisodeCosts(gym.Wrapper[np.ndarray, np.ndarray, np.ndarray, np.ndarray]):
    """Adds the episode's totals to ``info["episode_costs"]`` when an episode ends.

    Totals: every reward term [currency], ``import_kwh``, ``export_kwh``, ``co2_kg``,
    ``unmet_kwh``, ``peak_kw`` (the last billing-period peak), ``cost`` (sum of the terms) and
    ``return`` (sum of rewards). With ``kpis=True`` the episode's KPIs (as
    :func:`qubit_sim.run` computes them) are added as ``info["episode_kpis"]``.

    Args:
        env: A :class:`~qubit_sim.rl.envs.SiteDispatchEnv` or
            :class:`~qubit_sim.rl.envs.ChargerFleetEnv` (possibly wrapped).
        kpis: Also compute the episode's KPIs at its end.
    """

    def __init__(self, env: gym.Env[np.ndarray, np.ndarray], kpis: bool = False) -> None:
        super().__init__(env)
        self.kpis = kpis
        self._totals: dict[str, float] = {}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        self._totals = dict.fromkeys((*_SUMMED, "return"), 0.0)
        return self.env.reset(seed=seed, options=options)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        totals = self._totals
        for name in _SUMMED:
            totals[name] += float(info[name])
        totals["return"] += float(reward)
        if terminated or truncated:
            summary = dict(totals)
            summary["peak_kw"] = float(info["peak_kw"])
            summary["cost"] = sum(summary[name] for name in REWARD_TERMS)
            info["episode_costs"] = summary
            if self.kpis:
                info["episode_kpis"] = self.env.unwrapped.episode_kpis()  # type: ignore[attr-defined]
        return obs, float(reward), terminated, truncated, info
