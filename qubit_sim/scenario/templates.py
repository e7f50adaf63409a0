"""The twin template catalogue: YAML device templates in ``twins/``.

A template names a device kind (``charger``, ``battery``, ``pv``, ``load``), its physics parameters
(``params``, exactly the keys of the matching scenario asset entry) and its protocol profile. A
scenario entry that says ``template: <name>`` starts from ``params`` and overrides what it sets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qubit_sim.errors import ConfigIssue, ScenarioError

__all__ = ["PROJECT_TWINS_DIR", "TemplateCatalogue", "TwinTemplate"]

PROJECT_TWINS_DIR = Path(__file__).resolve().parents[2] / "twins"
_KINDS = ("charger", "battery", "pv", "load")


@dataclass(frozen=True)
class TwinTemplate:
    """One device template."""

    name: str
    kind: str
    description: str
    params: dict[str, Any]
    protocol: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


class TemplateCatalogue:
    """Templates by name, read from one or more folders (earlier folders win)."""

    def __init__(self, templates: dict[str, TwinTemplate]) -> None:
        self._templates = dict(templates)

    @classmethod
    def from_dirs(cls, *dirs: Path) -> TemplateCatalogue:
        templates: dict[str, TwinTemplate] = {}
        issues: list[ConfigIssue] = []
        for folder in dirs:
            if not folder.is_dir():
                continue
            for file in sorted(folder.glob("*.yaml")):
                template = _read_template(file, issues)
                if template is not None and template.name not in templates:
                    templates[template.name] = template
        if issues:
            raise ScenarioError(issues, "twin templates")
        return cls(templates)

    @classmethod
    def default(cls, scenario_dir: Path | None = None) -> TemplateCatalogue:
        """``<scenario dir>/twins``, ``<scenario dir>/../twins``, then the project's ``twins/``."""
        dirs = []
        if scenario_dir is not None:
            dirs += [scenario_dir / "twins", scenario_dir.parent / "twins"]
        dirs.append(PROJECT_TWINS_DIR)
        unique = list(dict.fromkeys(d.resolve() for d in dirs))
        return cls.from_dirs(*unique)

    def get(self, name: str) -> TwinTemplate | None:
        return self._templates.get(name)

    def names(self) -> list[str]:
        return sorted(self._templates)

    def __iter__(self) -> Iterator[TwinTemplate]:
        return iter(self._templates[name] for name in self.names())

    def __len__(self) -> int:
        return len(self._templates)


def _read_template(file: Path, issues: list[ConfigIssue]) -> TwinTemplate | None:
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        issues.append(ConfigIssue(str(file), f"not valid YAML: {exc}"))
        return None
    if not isinstance(data, dict):
        issues.append(ConfigIssue(str(file), "a template must be a mapping"))
        return None
    missing = [key for key in ("name", "kind", "params") if key not in data]
    if missing:
        issues.append(ConfigIssue(str(file), f"missing keys: {', '.join(missing)}"))
        return None
    unknown = sorted(set(data) - {"name", "kind", "description", "params", "protocol"})
    if unknown:
        issues.append(ConfigIssue(str(file), f"unknown keys: {', '.join(unknown)}"))
        return None
    if data["kind"] not in _KINDS:
        issues.append(
            ConfigIssue(
                f"{file}: kind", f"must be one of {', '.join(_KINDS)}, found {data['kind']!r}"
            )
        )
        return None
    if not isinstance(data["params"], dict):
        issues.append(ConfigIssue(f"{file}: params", "must be a mapping"))
        return None
    return TwinTemplate(
        name=str(data["name"]),
        kind=str(data["kind"]),
        description=str(data.get("description", "")),
        params=dict(data["params"]),
        protocol=dict(data.get("protocol") or {}),
        path=file,
    )
