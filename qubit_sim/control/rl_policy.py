"""``rl_policy``: a trained stable-baselines3 policy as a controller.

The policy sees the observation of the environment it was trained in and its action is turned
into setpoints by the environment's own code: exogenous features from
:class:`~qubit_sim.rl.horizon.Horizon`, state features from
:class:`~qubit_sim.rl.features.ObservationLayout`, actions through
:class:`~qubit_sim.rl.actions.ActionController`. Features are normalised with the scales stored
in the model's ``card.json`` (those of the training horizon), so a run of another length, start
or scenario gives the policy the values it learned on (as ``qubit-sim evaluate`` does, through
:meth:`~qubit_sim.rl.features.ObservationLayout.use_scales`).

Two state features need the site meter, which a controller does not see: the mean site power
over the last control period and the billing-period peak. They are estimated from the building
load and available PV of the run and the battery and EV power the policy applied (what the
projection granted). When the policy runs on a block of its training horizon (:meth:`RlPolicy.bind`),
they are estimated the same way. The estimate is exact while the EVs and the battery draw the
granted power for the whole period (it is high when an EV finishes or tapers within it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qubit_sim.control.base import Controller, Observation, Setpoints, SiteInfo
from qubit_sim.errors import ControllerError, ScenarioError

__all__ = ["RlPolicy"]


class RlPolicy(Controller):
    """Acts with a trained policy, deterministically.

    Args:
        model: Model folder written by ``qubit-sim train`` (``policy.zip`` + ``card.json``).

    Raises:
        ControllerError: the folder holds no model, or the site does not match the policy's
            observation or action size.
    """

    name = "rl_policy"

    def __init__(self, model: str | Path) -> None:
        from qubit_sim.rl.evaluate import load_card, load_policy

        self.model_dir = Path(model)
        try:
            self.card = load_card(self.model_dir)
        except ScenarioError as exc:
            raise ControllerError(f"rl_policy: {exc}") from None
        self.policy = load_policy(self.model_dir, self.card)
        self._horizon: Any = None
        self._offset_step = 0

    def bind(self, horizon: Any, offset_step: int) -> None:
        """Take features from ``horizon`` with run step 0 at horizon step ``offset_step``
        (instead of building a horizon of the run's scenario in :meth:`reset`)."""
        self._horizon = horizon
        self._offset_step = int(offset_step)

    # ----------------------------------------------------------------- reset
    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        from qubit_sim.rl.actions import ActionController
        from qubit_sim.rl.features import ObservationLayout
        from qubit_sim.rl.reward import DemandTracker

        super().reset(site, rng)
        card = self.card
        horizon = self._horizon or self._run_horizon(site)
        self.horizon = horizon
        kind = card["kind"]
        self.layout = layout = ObservationLayout(horizon, per_charger=kind == "charger_fleet")
        if layout.names != card["observation_names"]:
            raise ControllerError(
                f"rl_policy {self.model_dir}: this site gives {layout.size} observation features, "
                f"the policy was trained on {len(card['observation_names'])} "
                f"({card['scenario']}); use a site with the same devices"
            )
        # The rescaling `qubit-sim evaluate` applies too (SiteEnv.set_feature_scales).
        try:
            layout.use_scales(horizon, card.get("scales") or {})
        except ScenarioError as exc:
            raise ControllerError(f"rl_policy {self.model_dir}/card.json: {exc}") from None
        self._agent = ActionController(kind)
        self._agent.reset(site, rng)
        self._demand = DemandTracker(horizon.window_id, horizon.period_label)
        self._dt = site.step_s
        self._episode_steps = int(card["episode_length_s"]) // site.step_s
        self._power_flow = bool(card["power_flow"])
        self._last_k: int | None = None
        self._held_kw = 0.0
        self._site_prev_kw = 0.0

    def _run_horizon(self, site: SiteInfo) -> Any:
        from qubit_sim.rl.horizon import Horizon

        loaded = site.params.get("scenario")
        if loaded is None:
            raise ControllerError("rl_policy needs the run's scenario in SiteInfo.params")
        card = self.card
        duration_s = int(loaded.spec.site.duration)
        length = int(card["episode_length_s"])
        if duration_s < length:
            # A run shorter than an episode: one window of the run's length (a whole number of
            # control periods) gives the same features for the steps it has.
            length = max(duration_s - duration_s % site.period_s, site.period_s)
        return Horizon(
            loaded,
            episode_length=length,
            lookahead_h=int(card["lookahead_h"]),
            forecast=str(card["forecast"]),
            power_flow=False,
        )

    # ------------------------------------------------------------------- act
    def _meter(self, k: int) -> None:
        """Feed the estimated site power of steps since the last call to the demand tracker."""
        horizon = self.horizon
        first = self._offset_step
        episode_steps = self._episode_steps
        if self._last_k is not None:
            steps = np.arange(self._last_k, k)
            h = first + steps
            site_kw = horizon.load_total_kw[h] - horizon.pv_total_kw[h] + self._held_kw
            for step, p_kw in zip(steps.tolist(), site_kw.tolist(), strict=True):
                if step % episode_steps == 0:
                    self._demand.reset(first + step, episode_steps)
                self._demand.add(step % episode_steps, max(p_kw, 0.0))
            if len(site_kw):
                self._site_prev_kw = float(site_kw.mean())
        if k % episode_steps == 0:
            # Each episode of the env starts from a fresh meter.
            self._demand.reset(first + k, episode_steps)
            self._site_prev_kw = 0.0

    def observe(self, obs: Observation) -> np.ndarray:
        """The policy's observation vector at ``obs`` (float32, clipped to its bounds)."""
        k = int(obs.k)
        self._meter(k)
        layout = self.layout
        episode_k = k % self._episode_steps
        raw = np.empty((1, layout.size))
        layout.fill_exo(raw[0, : layout.n_exo], self.horizon.exo_rows(self._offset_step + k))
        voltage = obs.site_voltage_pu if self._power_flow else 1.0
        if voltage != voltage:
            voltage = 1.0
        # Times as the env counts them: from the episode start.
        episode_t0 = (k - episode_k) * self._dt
        departure = np.where(
            obs.charger_connected, obs.charger_departure_s - episode_t0, obs.charger_departure_s
        )
        layout.fill_state(
            raw[:, layout.n_exo :],
            episode_k,
            np.array([float(episode_k * self._dt)]),
            np.asarray(obs.battery_soc, dtype=float)[None, :],
            np.asarray(obs.charger_connected)[None, :],
            np.asarray(obs.charger_e_needed_kwh, dtype=float)[None, :],
            departure[None, :],
            np.asarray(obs.charger_ev_max_kw, dtype=float)[None, :],
            np.array([self._site_prev_kw]),
            np.array([self._demand.peak_kw]),
            np.array([voltage]),
        )
        return layout.finish(raw)[0]

    def act(self, obs: Observation) -> Setpoints:
        features = self.observe(obs)
        action, _ = self.policy.predict(features, deterministic=True)
        agent = self._agent
        agent.pending = np.asarray(action, dtype=float).reshape(-1)
        setpoints = agent.act(obs)
        applied = agent.applied
        ev_kw = applied.get("ev_kw")
        if ev_kw is None:
            ev_kw = float(np.sum(applied["charger_kw"]))
        self._held_kw = float(applied["battery_kw"]) + float(ev_kw)
        self._last_k = int(obs.k)
        return setpoints
