"""Train a stable-baselines3 policy on a site environment and write its model folder.

``train(...)`` writes ``<out>/<name>/``:

* ``policy.zip`` — the SB3 model;
* ``card.json`` — the facts: scenario, environment and its arguments, reward weights, seeds,
  hyperparameters, the feature scales the observation was normalised with, the training curve,
  evaluation KPIs on the test split against the baselines, training wall time, the whole
  :class:`TrainConfig` (``config``) and the ``qubit-sim train`` command that reproduces it
  (``command``; see :meth:`TrainConfig.command`);
* ``model_card.md`` — the same for people, with ``training_curve.png``.

Training is deterministic given the seed: SB3's ``set_random_seed`` seeds Python, numpy and torch,
the environment is reset with the seed, and torch runs single-threaded (thread scheduling changes
the summation order of its reductions).

Wrong arguments raise :class:`ArgumentError` before anything trains or any folder is written: the
message names the argument (``env_kwargs.forcast``), the bad value and what is valid, with a "did
you mean" for a near miss. A problem in the scenario file itself stays a :class:`ScenarioError`
that names the file.
"""

from __future__ import annotations

import inspect
import json
import numbers
import shlex
import time
import types
import typing
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from qubit_sim.errors import ArgumentError, ConfigIssue, ScenarioError

__all__ = [
    "ALGOS",
    "DEFAULT_HYPERPARAMETERS",
    "ENV_KINDS",
    "TrainConfig",
    "algo_class",
    "make_env",
    "train",
]

# Environment arguments of a run that gives none: the feeder's power flow off, for speed.
_DEFAULT_ENV_KWARGS: dict[str, Any] = {"power_flow": False}

#: Environment names of the CLI -> env kind (see :mod:`qubit_sim.rl.actions`).
ENV_KINDS = {"SiteDispatch": "site_dispatch", "ChargerFleet": "charger_fleet"}
ALGOS = ("PPO", "SAC", "TD3")


_TRAIN = "the arguments of qubit-sim train"


def _hint(word: Any, choices: Iterable[str]) -> str:
    """A "did you mean" for ``word`` among ``choices``, also across letter case (``ppo``)."""
    from qubit_sim.scenario.loader import suggest

    choices = list(choices)
    return suggest(str(word), choices) or suggest(str(word).upper(), choices)


#: Hyperparameters per algorithm, small networks sized for one site on a 2-core CPU.
DEFAULT_HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "PPO": {
        "learning_rate": 3e-4,
        "n_steps": 768,
        "batch_size": 128,
        "n_epochs": 10,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "ent_coef": 0.0,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
    "SAC": {
        "learning_rate": 3e-4,
        "buffer_size": 100_000,
        "batch_size": 256,
        "learning_starts": 500,
        "gamma": 0.99,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
    "TD3": {
        "learning_rate": 1e-3,
        "buffer_size": 100_000,
        "batch_size": 256,
        "learning_starts": 500,
        "gamma": 0.99,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
}


@dataclass
class TrainConfig:
    """What a training run is made of (all of it goes into ``card.json``).

    Attributes:
        scenario: Scenario YAML path.
        env: ``"SiteDispatch"`` or ``"ChargerFleet"``.
        algo: ``"PPO"``, ``"SAC"`` or ``"TD3"``.
        timesteps: Environment steps (control instants) to train for.
        seed: Seed of the agent, torch and the episode draws.
        test_fraction: Share of the horizon's episode blocks held out for testing.
        name: Model folder name.
        out: Folder the model folder goes in.
        env_kwargs: Arguments of the environment (see :class:`~qubit_sim.rl.envs.SiteDispatchEnv`).
        hyperparameters: Overrides of :data:`DEFAULT_HYPERPARAMETERS`.
        eval_episodes: Test episodes in the card's evaluation (``None``: the whole test split).
    """

    scenario: str
    env: str = "SiteDispatch"
    algo: str = "PPO"
    timesteps: int = 50_000
    seed: int = 0
    test_fraction: float = 0.2
    name: str | None = None
    out: str = "models"
    env_kwargs: dict[str, Any] = field(default_factory=lambda: dict(_DEFAULT_ENV_KWARGS))
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    eval_episodes: int | None = None

    def check(self) -> None:
        """Raise :class:`ArgumentError` naming every invalid field, its value and its fix.

        Also flags ``env_kwargs`` the environment does not take, ``hyperparameters`` the
        algorithm does not take or of the wrong type, and values of either that JSON (so the
        card) cannot hold. Values of ``env_kwargs`` are checked by the environment, which
        :func:`train` builds before it trains.
        """
        issues = []
        if self.env not in ENV_KINDS:
            issues.append(_unknown_name("env", self.env, list(ENV_KINDS)))
        if self.algo not in ALGOS:
            issues.append(_unknown_name("algo", self.algo, list(ALGOS)))
        if not _is_int(self.timesteps) or self.timesteps <= 0:
            issues.append(
                ConfigIssue("timesteps", f"must be a whole number > 0, found {self.timesteps!r}")
            )
        if not _is_int(self.seed) or not 0 <= self.seed < 2**32:
            issues.append(
                ConfigIssue("seed", f"must be a whole number in [0, 2**32), found {self.seed!r}")
            )
        if self.eval_episodes is not None and (
            not _is_int(self.eval_episodes) or self.eval_episodes <= 0
        ):
            issues.append(
                ConfigIssue(
                    "eval_episodes",
                    f"must be a whole number > 0 (--episodes), found {self.eval_episodes!r}; "
                    "leave it out to evaluate the whole test split",
                )
            )
        if not Path(self.scenario).is_file():
            issues.append(ConfigIssue("scenario", f"no scenario file at {self.scenario!r}"))
        folder = Path(self.out) / self.model_name
        for path in (Path(self.out), folder):
            if path.exists() and not path.is_dir():
                issues.append(
                    ConfigIssue("out", f"{path} is a file, not a folder; choose another --out")
                )
                break
        issues += _json_issues("env_kwargs", self.env_kwargs)
        issues += _json_issues("hyperparameters", self.hyperparameters)
        issues += _unknown_env_kwargs(self.env_kwargs)
        if self.algo in ALGOS:
            issues += _unknown_hyperparameters(self.algo, self.hyperparameters)
            hyper = {**DEFAULT_HYPERPARAMETERS[self.algo], **self.hyperparameters}
            starts = hyper.get("learning_starts")
            if isinstance(starts, int) and 0 < self.timesteps <= starts:
                issues.append(
                    ConfigIssue(
                        "timesteps",
                        f"{self.timesteps} is not more than {self.algo}'s learning_starts "
                        f"({starts}): no training step would run; raise --timesteps or lower "
                        "learning_starts (--hyperparameters)",
                    )
                )
        if issues:
            raise ArgumentError(issues, _TRAIN)

    @property
    def model_name(self) -> str:
        """The model folder name (default ``<scenario>-<env>-<algo>-s<seed>``)."""
        if self.name:
            return self.name
        return f"{Path(self.scenario).stem}-{self.env.lower()}-{self.algo.lower()}-s{self.seed}"

    def command(self) -> str:
        """The ``qubit-sim train`` command that reproduces this run.

        ``--env-kwargs`` appears when :attr:`env_kwargs` (without ``test_fraction``, which
        :attr:`test_fraction` overrides) differs from the default ``{"power_flow": false}``,
        ``--hyperparameters`` when :attr:`hyperparameters` is not empty; both as JSON with sorted
        keys (tuples become lists, as in ``card.json``).

        Raises:
            ArgumentError: a value of ``env_kwargs`` or ``hyperparameters`` that JSON cannot
                hold (each named).
        """
        env_kwargs = {k: v for k, v in self.env_kwargs.items() if k != "test_fraction"}
        issues = _json_issues("env_kwargs", env_kwargs)
        issues += _json_issues("hyperparameters", self.hyperparameters)
        if issues:
            raise ArgumentError(issues, f"the TrainConfig of {self.model_name}")
        parts = [
            "qubit-sim",
            "train",
            "--env",
            self.env,
            "--scenario",
            self.scenario,
            "--algo",
            self.algo,
            "--timesteps",
            str(self.timesteps),
            "--seed",
            str(self.seed),
            "--test-fraction",
            str(self.test_fraction),
            "--name",
            self.model_name,
            "--out",
            self.out,
        ]
        if self.eval_episodes is not None:
            parts += ["--episodes", str(self.eval_episodes)]
        if env_kwargs != _DEFAULT_ENV_KWARGS:
            parts += ["--env-kwargs", json.dumps(env_kwargs, sort_keys=True)]
        if self.hyperparameters:
            parts += ["--hyperparameters", json.dumps(self.hyperparameters, sort_keys=True)]
        return shlex.join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Every field, with ``name`` resolved to :attr:`model_name` (a card's
        ``config``); :meth:`from_dict` gives the configuration back."""
        return {**asdict(self), "name": self.model_name}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The configuration of :meth:`to_dict` (a card's ``config``).

        Raises:
            ArgumentError: unknown keys, or no ``scenario``.
        """
        known = sorted(f.name for f in fields(cls))
        issues = [
            ConfigIssue(f"config.{key}", f"unknown setting{_hint(key, known)}; known: {known}")
            for key in values
            if key not in known
        ]
        if "scenario" not in values:
            issues.append(ConfigIssue("config.scenario", "missing; the scenario YAML path"))
        if issues:
            raise ArgumentError(issues, "a TrainConfig (a model card's config)")
        return cls(**values)


def _json_issues(name: str, values: dict[str, Any]) -> list[ConfigIssue]:
    """Entries of ``values`` that ``card.json`` (and so a command) cannot hold."""
    issues = []
    for key, value in values.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            issues.append(
                ConfigIssue(f"{name}.{key}", f"not expressible in JSON ({exc}); use JSON values")
            )
    return issues


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _unknown_name(path: str, name: Any, known: list[str]) -> ConfigIssue:
    return ConfigIssue(path, f"unknown {path} {name!r}{_hint(name, known)}; use {known}")


# Set by train() itself (or of no use in training), so not env_kwargs / hyperparameters; the
# option that sets each instead, where there is one.
_TRAIN_SETS_ENV = {
    "scenario": "--scenario",
    "horizon": "",
    "split": "training uses the 'train' split, the card's evaluation the 'test' one",
    "render_mode": "",
}
_TRAIN_SETS_ALGO = {"policy": "", "env": "--env", "seed": "--seed", "device": "", "verbose": ""}


def _reserved(path: str, what: str, setter: str) -> ConfigIssue:
    how = f" ({setter})" if setter else ""
    return ConfigIssue(path, f"{what} to set here: train sets it itself{how}; remove it")


def _unknown_env_kwargs(env_kwargs: dict[str, Any]) -> list[ConfigIssue]:
    from qubit_sim.rl.arguments import argument_names
    from qubit_sim.rl.envs import SiteEnv

    known = [name for name in argument_names(SiteEnv) if name not in _TRAIN_SETS_ENV]
    issues = []
    for key in env_kwargs:
        path = f"env_kwargs.{key}"
        if key in _TRAIN_SETS_ENV:
            issues.append(_reserved(path, "not an environment argument", _TRAIN_SETS_ENV[key]))
        elif key not in known:
            message = f"not an environment argument{_hint(key, known)}; known: {known}"
            issues.append(ConfigIssue(path, message))
    return issues


def _unknown_hyperparameters(algo: str, hyperparameters: dict[str, Any]) -> list[ConfigIssue]:
    parameters = inspect.signature(algo_class(algo).__init__).parameters
    known = [
        name
        for name in parameters
        if name not in _TRAIN_SETS_ALGO and name not in ("self", "_init_setup_model")
    ]
    issues = []
    for key, value in hyperparameters.items():
        path = f"hyperparameters.{key}"
        if key in _TRAIN_SETS_ALGO:
            issues.append(_reserved(path, f"not a {algo} hyperparameter", _TRAIN_SETS_ALGO[key]))
        elif key not in known:
            message = f"not a {algo} hyperparameter{_hint(key, known)}; known: {known}"
            issues.append(ConfigIssue(path, message))
        else:
            expected = _json_kinds(parameters[key].annotation)
            if expected and not any(_is_kind(value, kind) for kind in expected):
                wanted = " or ".join(_KIND_WORDS[kind] for kind in expected)
                issues.append(ConfigIssue(path, f"must be {wanted}, found {value!r}"))
    return issues


_KIND_WORDS = {
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    str: "a string",
    type(None): "null",
}


def _json_kinds(annotation: Any) -> list[type]:
    """The JSON kinds an SB3 argument annotated ``annotation`` takes (``[]``: not checked).

    Callables (schedules) cannot come from JSON and are left out; an annotation with any other
    kind (dicts, tuples, classes) is left to SB3 to check.
    """
    members = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    kinds = [m for m in members if typing.get_origin(m) is not _CALLABLE and m is not _CALLABLE]
    if not kinds or not all(kind in _KIND_WORDS for kind in kinds):
        return []
    return kinds


_CALLABLE = typing.get_origin(typing.Callable[[float], float])


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _is_kind(value: Any, kind: type) -> bool:
    if kind is int:
        return _is_int(value)
    if kind is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    return isinstance(value, kind)


def algo_class(algo: str) -> Any:
    """The SB3 class of ``algo`` (``"PPO"``, ``"SAC"``, ``"TD3"``).

    Raises:
        ArgumentError: an unknown ``algo`` (with a "did you mean").
    """
    import stable_baselines3

    if algo not in ALGOS:
        raise ArgumentError([_unknown_name("algo", algo, list(ALGOS))], "the algorithm name")
    return getattr(stable_baselines3, algo)


def make_env(
    env: str, scenario: str | Path | None = None, horizon: Any = None, **env_kwargs: Any
) -> Any:
    """A :class:`~qubit_sim.rl.envs.SiteDispatchEnv` or ``ChargerFleetEnv`` by CLI name.

    Raises:
        ArgumentError: an unknown ``env`` (with a "did you mean"), or invalid ``env_kwargs``.
        ScenarioError: a problem in the scenario file.
    """
    from qubit_sim.rl.envs import ChargerFleetEnv, SiteDispatchEnv

    if env not in ENV_KINDS:
        raise ArgumentError([_unknown_name("env", env, list(ENV_KINDS))], "the environment name")
    cls = SiteDispatchEnv if env == "SiteDispatch" else ChargerFleetEnv
    if horizon is not None:
        kwargs = {k: v for k, v in env_kwargs.items() if k in _ENV_ONLY_KWARGS}
        return cls(horizon=horizon, **kwargs)
    return cls(scenario, **env_kwargs)


# Arguments of the env itself (the others build its Horizon).
_ENV_ONLY_KWARGS = (
    "split",
    "carbon_price_per_kg",
    "demand_charge_per_kw",
    "unmet_penalty_per_kwh",
    "voltage_penalty_per_pu_h",
    "overload_penalty_per_pct_h",
    "reward_scale",
)


class _Recorder:
    """SB3 callback: episode returns for the training curve and a rich progress bar."""

    def __new__(cls, total: int, progress: bool) -> Any:
        from stable_baselines3.common.callbacks import BaseCallback

        class Recorder(BaseCallback):
            def __init__(self) -> None:
                super().__init__()
                self.curve: list[tuple[int, float]] = []
                self._progress: Any = None

            def _on_training_start(self) -> None:
                if progress:
                    from rich.progress import (
                        BarColumn,
                        MofNCompleteColumn,
                        Progress,
                        TimeRemainingColumn,
                    )

                    self._progress = Progress(
                        "[progress.description]{task.description}",
                        BarColumn(),
                        MofNCompleteColumn(),
                        TimeRemainingColumn(),
                    )
                    self._progress.start()
                    self._task = self._progress.add_task("training", total=total)

            def _on_step(self) -> bool:
                for info in self.locals.get("infos", []):
                    episode = info.get("episode")
                    if episode is not None:
                        self.curve.append((int(self.num_timesteps), float(episode["r"])))
                if self._progress is not None:
                    self._progress.update(self._task, completed=self.num_timesteps)
                return True

            def _on_training_end(self) -> None:
                if self._progress is not None:
                    self._progress.update(self._task, completed=self.num_timesteps)
                    self._progress.stop()

        return Recorder()


def _plot_curve(curve: list[tuple[int, float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    if curve:
        steps = np.array([c[0] for c in curve])
        returns = np.array([c[1] for c in curve])
        ax.plot(steps, returns, ".", alpha=0.35, label="episode return")
        window = max(1, len(returns) // 10)
        smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, "-", label=f"mean of {window}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("timesteps")
    ax.set_ylabel("episode return [-cost]")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    # No metadata: the same run gives the same bytes.
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def train(config: TrainConfig, *, progress: bool = False, evaluate: bool = True) -> Path:
    """Train a policy and write its model folder; returns the folder.

    The environment and the model are built before the folder is made, so wrong arguments
    leave nothing on disk.

    Raises:
        ArgumentError: invalid arguments (:meth:`TrainConfig.check`, values of ``env_kwargs``
            the environment refuses, hyperparameters SB3 refuses, an ``out`` that cannot be
            made).
        ScenarioError: a problem in the scenario file.
    """
    config.check()
    import torch
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import DummyVecEnv

    wall_start = time.perf_counter()
    torch.set_num_threads(1)
    set_random_seed(config.seed)
    env_kwargs = {**config.env_kwargs, "test_fraction": config.test_fraction}
    env = _training_env(config, env_kwargs, evaluate)
    env.reset(seed=config.seed)
    env.action_space.seed(config.seed)
    vec_env = DummyVecEnv([lambda: Monitor(env)])
    vec_env.seed(config.seed)
    hyper = {**DEFAULT_HYPERPARAMETERS[config.algo], **config.hyperparameters}
    if config.algo == "PPO" and config.timesteps < hyper["n_steps"]:
        # A run shorter than one rollout trains on one rollout of its own length.
        hyper["n_steps"] = max(config.timesteps, 2)
        hyper["batch_size"] = min(hyper["batch_size"], hyper["n_steps"])
    try:
        model = algo_class(config.algo)(
            "MlpPolicy", vec_env, seed=config.seed, device="cpu", verbose=0, **hyper
        )
    except (AssertionError, TypeError, ValueError) as exc:
        # SB3 checks its arguments with asserts and the policy's constructor.
        given = json.dumps(config.hyperparameters)
        issue = ConfigIssue("hyperparameters", f"{config.algo} refused {given}: {exc}")
        raise ArgumentError([issue], _TRAIN) from None
    folder = Path(config.out) / config.model_name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        issue = ConfigIssue("out", f"cannot make the model folder {folder}: {exc.strerror}")
        raise ArgumentError([issue], _TRAIN) from None
    model.set_logger(Logger(folder=None, output_formats=[]))
    recorder = _Recorder(config.timesteps, progress)
    model.learn(total_timesteps=config.timesteps, callback=recorder)
    train_wall_s = time.perf_counter() - wall_start
    model.save(folder / "policy.zip")

    horizon = env.horizon
    card: dict[str, Any] = {
        "name": config.model_name,
        "scenario": config.scenario,
        "env": config.env,
        "kind": ENV_KINDS[config.env],
        "algo": config.algo,
        "timesteps": config.timesteps,
        # PPO collects whole rollouts of n_steps, so it may play past `timesteps`.
        "timesteps_trained": int(model.num_timesteps),
        "seed": config.seed,
        "env_kwargs": env_kwargs,
        "episode_length_s": int(horizon.episode_s),
        "lookahead_h": int(horizon.lookahead_h),
        "forecast": horizon.forecast,
        "power_flow": bool(horizon.power_flow),
        "observation_names": list(env.observation_names),
        "scales": horizon.scales,
        "reward_weights": asdict(env.weights),
        "hyperparameters": hyper,
        "splits": {k: [int(b) for b in v] for k, v in horizon.splits.items()},
        "training_curve": [[int(s), round(r, 6)] for s, r in recorder.curve],
        "train_wall_s": round(train_wall_s, 1),
        "command": config.command(),
        "config": config.to_dict(),
        "versions": _versions(),
    }
    _plot_curve(recorder.curve, folder / "training_curve.png", config.model_name)
    if evaluate:
        from qubit_sim.rl.evaluate import evaluate_model

        card["evaluation"] = evaluate_model(
            folder,
            split="test",
            episodes=config.eval_episodes,
            env=env,
            card=card,
            model=model,
        )
    (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    from qubit_sim.rl.evaluate import write_model_card

    write_model_card(folder, card)
    return folder


def _training_env(config: TrainConfig, env_kwargs: dict[str, Any], evaluate: bool) -> Any:
    """The training environment; its argument errors name the ``TrainConfig`` field. With
    ``evaluate``, an empty test split is refused here rather than after training."""
    try:
        env = make_env(config.env, config.scenario, split="train", **env_kwargs)
    except ArgumentError as exc:
        issues = [
            ConfigIssue(
                issue.path if issue.path == "test_fraction" else f"env_kwargs.{issue.path}",
                issue.message,
            )
            for issue in exc.issues
        ]
        raise ArgumentError(issues, _TRAIN, exc.source) from None
    if evaluate:
        try:
            env.horizon.blocks("test")
        except ScenarioError as exc:
            issues = [ConfigIssue("test_fraction", issue.message) for issue in exc.issues]
            raise ArgumentError(issues, _TRAIN, exc.source) from None
    return env


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("qubit-sim", "stable-baselines3", "torch", "gymnasium", "numpy"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "unknown"
    return out
