"""Read a scenario YAML, apply twin templates, validate, and report every problem at once.

Problems are collected and raised together as one :class:`~qubit_sim.errors.ScenarioError`; each
names its YAML path and line, what was expected and what was found, and suggests a close match
for misspelt keys and names.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from qubit_sim.errors import ConfigIssue, ScenarioError
from qubit_sim.scenario import schema
from qubit_sim.scenario.fault_targets import (
    ASSET_SECTIONS,
    DeviceIdClash,
    device_id_clashes,
    device_ids,
    entry_device_ids,
    fault_devices,
)
from qubit_sim.scenario.templates import TemplateCatalogue

__all__ = [
    "LoadedScenario",
    "device_id_issues",
    "format_path",
    "load_scenario",
    "load_scenario_text",
    "nearest_line",
    "parse_yaml_mapping",
    "suggest",
    "yaml_line_map",
]


class LoadedScenario:
    """A validated scenario plus where it came from.

    Attributes:
        spec: The validated :class:`~qubit_sim.scenario.schema.Scenario`.
        path: The file it was read from (``None`` for text).
        base_dir: Folder against which relative paths in the file (CSV files) are resolved.
        raw: The document after templates were applied (plain dicts), for the manifest.
        lines: The 1-based line of each YAML path of the text (see :func:`yaml_line_map`).
    """

    def __init__(
        self,
        spec: schema.Scenario,
        path: Path | None,
        base_dir: Path,
        raw: dict[str, Any],
        lines: dict[tuple[Any, ...], int] | None = None,
    ) -> None:
        self.spec = spec
        self.path = path
        self.base_dir = base_dir
        self.raw = raw
        self.lines = lines or {}

    def locate(self, error: ScenarioError) -> ScenarioError:
        """``error`` with the YAML line of every issue that names a path but no line.

        Problems found after loading (building the site: feeder buses, sessions) are reported
        by path; this gives them the line of that path in this scenario's text.
        """
        if all(issue.line is not None or not issue.path for issue in error.issues):
            return error
        issues = [
            issue
            if issue.line is not None or not issue.path
            else ConfigIssue(issue.path, issue.message, self._line(issue.path))
            for issue in error.issues
        ]
        return ScenarioError(issues, error.source)

    def _line(self, path: str) -> int | None:
        """Line of ``path`` or of its closest ancestor below the root (not a YAML path: None)."""
        loc = _loc(path)
        return next(
            (self.lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in self.lines), None
        )

    def resolve(self, relative: str) -> Path:
        """Resolve a path written in the scenario relative to the scenario's folder."""
        candidate = Path(relative)
        return candidate if candidate.is_absolute() else (self.base_dir / candidate).resolve()

    @property
    def name(self) -> str:
        return self.spec.site.name


def format_path(loc: Iterable[Any]) -> str:
    """``('assets', 'chargers', 0, 'power_kw')`` -> ``assets.chargers[0].power_kw``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _loc(path: str) -> tuple[Any, ...]:
    """``assets.chargers[0].bus`` -> ``('assets', 'chargers', 0, 'bus')`` (see format_path)."""
    return tuple(
        int(index) if index else key for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path)
    )


def yaml_line_map(text: str) -> dict[tuple[Any, ...], int]:
    """Map each YAML path (``("devices", 0, "id")``) to the 1-based line where it starts; empty
    when the text is not valid YAML (its parse error carries the line instead)."""
    lines: dict[tuple[Any, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = path + (key.value,)
                lines[child] = key.start_mark.line + 1
                walk(value, child)
                lines[child] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, path + (index,))

    if root is not None:
        walk(root, ())
    return lines


def parse_yaml_mapping(
    text: str,
    source: str | None,
    expected: str,
    error: type[ScenarioError] = ScenarioError,
) -> dict[str, Any]:
    """The YAML document in ``text``, which must be a mapping.

    Args:
        text: The YAML.
        source: Where it came from (error messages).
        expected: What the mapping should hold, for the message, e.g. ``"a mapping with a 'site'
            section"``.
        error: The :class:`~qubit_sim.errors.ScenarioError` subclass to raise.

    Raises:
        ScenarioError: (``error``) when the text is not YAML (with the line of the problem) or
            not a mapping.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise error([ConfigIssue("", f"not valid YAML: {problem}", line)], source) from None
    if not isinstance(document, dict):
        found = type(document).__name__ if document is not None else "an empty file"
        raise error([ConfigIssue("", f"expected {expected}, found {found}")], source)
    return document


def nearest_line(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    """The line of ``loc`` or of its closest ancestor in ``lines`` (``None``: not found)."""
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Optional/Union/list/Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg)]
    if origin in (list, tuple):
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg)]
    return [annotation]


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = schema.Scenario
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        candidates = [
            t for t in _unwrap(field.annotation) if isinstance(t, type) and issubclass(t, BaseModel)
        ]
        model = candidates[0] if candidates else None
    return model


def suggest(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest choice, or an empty string."""
    matches = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def _soc_hint(loc: tuple[Any, ...], kind: str, found: Any) -> str:
    """A hint for an SOC written as a percentage (``95`` for ``0.95``)."""
    name = str(loc[-1]) if loc else ""
    is_number = isinstance(found, int | float) and not isinstance(found, bool)
    if "soc" not in name or not kind.startswith("less_than") or not is_number:
        return ""
    if not 1 < found <= 100:
        return ""
    return f"; SOC is a fraction of capacity; write {found / 100:g} for {found:g} %"


def _missing(loc: tuple[Any, ...]) -> str:
    """``required key is missing``, with what the key means and an example when it has one."""
    model = _model_at(loc[:-1])
    field = model.model_fields.get(str(loc[-1])) if model is not None and loc else None
    if field is None or not field.examples:
        return "required key is missing"
    return f"required key is missing: {field.description}; e.g. {loc[-1]}: {field.examples[0]}"


def _issues_from_validation(
    error: ValidationError,
    lines: dict[tuple[Any, ...], int],
    untemplated: Sequence[tuple[Any, ...]] = (),
) -> list[ConfigIssue]:
    """The issues of a pydantic error; ``untemplated`` entries (their template could not be
    applied) are not told of the keys or key combinations the template would have given."""
    issues = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        kind = item["type"]
        found = item.get("input")
        cause = item.get("ctx", {}).get("error")
        if isinstance(cause, schema.FieldError):
            loc += cause.loc
            item = {**item, "msg": cause.message}
        if any(
            loc[: len(entry)] == entry and (kind == "missing" or len(loc) == len(entry))
            for entry in untemplated
        ):
            continue
        if kind == "extra_forbidden":
            model = _model_at(loc[:-1])
            allowed = sorted(model.model_fields) if model else []
            message = f"unknown key {loc[-1]!r}{suggest(str(loc[-1]), allowed)}"
            if allowed:
                message += f"; allowed keys: {', '.join(allowed)}"
        elif kind == "missing":
            message = _missing(loc)
        else:
            message = item["msg"]
            if message.startswith("Value error, "):
                message = message[len("Value error, ") :]
            if kind == "literal_error":
                expected = item.get("ctx", {}).get("expected", "")
                options = [s.strip(" '") for s in str(expected).replace(" or ", ",").split(",")]
                message += suggest(str(found), options)
            quoted = "found" in message or repr(found) in message
            if not isinstance(found, dict | list) and found is not None and not quoted:
                shown = found.isoformat() if hasattr(found, "isoformat") else found
                message += f" (found {shown!r})"
            message += _soc_hint(loc, kind, found)
        issues.append(ConfigIssue(format_path(loc), message, nearest_line(lines, loc)))
    return issues


def _apply_templates(
    document: dict[str, Any],
    catalogue: TemplateCatalogue,
    lines: dict[tuple[Any, ...], int],
    issues: list[ConfigIssue],
    untemplated: list[tuple[Any, ...]],
) -> dict[str, Any]:
    """``document`` with each asset entry merged over its template; entries whose template is
    unknown or of another kind are reported and added to ``untemplated``."""
    assets = document.get("assets")
    if not isinstance(assets, dict):
        return document
    merged_assets: dict[str, Any] = dict(assets)
    for section, kind in ASSET_SECTIONS.items():
        entries = assets.get(section)
        if not isinstance(entries, list):
            continue
        merged = []
        for index, entry in enumerate(entries):
            if isinstance(entry, dict) and entry.get("template") is not None:
                loc = ("assets", section, index, "template")
                name = str(entry["template"])
                template = catalogue.get(name)
                if template is None or template.kind != kind:
                    untemplated.append(loc[:-1])
                if template is None:
                    issues.append(
                        ConfigIssue(
                            format_path(loc),
                            f"unknown twin template {name!r}{suggest(name, catalogue.names())}; "
                            f"available: {', '.join(catalogue.names()) or 'none'}",
                            nearest_line(lines, loc),
                        )
                    )
                elif template.kind != kind:
                    issues.append(
                        ConfigIssue(
                            format_path(loc),
                            f"template {name!r} describes a {template.kind}, not a {kind}",
                            nearest_line(lines, loc),
                        )
                    )
                else:
                    entry = {**template.params, **entry}
            merged.append(entry)
        merged_assets[section] = merged
    return {**document, "assets": merged_assets}


def load_scenario_text(
    text: str,
    *,
    source: str = "<text>",
    base_dir: Path | None = None,
    catalogue: TemplateCatalogue | None = None,
    overrides: dict[str, Any] | None = None,
) -> LoadedScenario:
    """Validate scenario YAML given as text. See :func:`load_scenario`."""
    base = base_dir or Path.cwd()
    document = parse_yaml_mapping(text, source, "a mapping with a 'site' section")
    if overrides:
        document = _deep_merge(document, overrides)
    lines = yaml_line_map(text)
    issues: list[ConfigIssue] = []
    untemplated: list[tuple[Any, ...]] = []
    document = _apply_templates(
        document, catalogue or TemplateCatalogue.default(base), lines, issues, untemplated
    )
    spec = None
    try:
        spec = schema.Scenario.model_validate(document)
    except ValidationError as exc:
        issues.extend(_issues_from_validation(exc, lines, untemplated))
    issues.extend(_controller_issues(document, lines))
    if spec is not None:
        issues.extend(_semantic_issues(spec, base, lines))
    if issues:
        raise ScenarioError(issues, source)
    assert spec is not None
    return LoadedScenario(spec, None, base, document, lines)


def load_scenario(
    path: str | Path,
    *,
    overrides: dict[str, Any] | None = None,
    catalogue: TemplateCatalogue | None = None,
) -> LoadedScenario:
    """Read and validate a scenario file.

    Args:
        path: The YAML file.
        overrides: Nested values merged over the file (e.g. ``{"site": {"seed": 3}}``).
        catalogue: Twin templates to resolve ``template:`` names against (default: the ``twins/``
            folder next to the scenario's folder, then the project's ``twins/``).

    Raises:
        ScenarioError: with every problem found, each with its YAML path and line.
    """
    file = Path(path)
    if not file.is_file():
        raise ScenarioError([ConfigIssue("", f"no such scenario file: {file}")], str(file))
    text = file.read_text(encoding="utf-8")
    loaded = load_scenario_text(
        text,
        source=str(file),
        base_dir=file.resolve().parent,
        catalogue=catalogue,
        overrides=overrides,
    )
    loaded.path = file.resolve()
    return loaded


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _controller_issues(
    document: dict[str, Any], lines: dict[tuple[Any, ...], int]
) -> list[ConfigIssue]:
    """The controller name, checked even when other parts of the file are invalid."""
    from qubit_sim.control.registry import controller_names, is_import_path

    section = document.get("controller")
    name = section.get("name") if isinstance(section, dict) else None
    if not isinstance(name, str) or is_import_path(name) or name in controller_names():
        return []
    loc = ("controller", "name")
    return [
        ConfigIssue(
            format_path(loc),
            f"unknown controller {name!r}{suggest(name, controller_names())}; "
            f"registered: {', '.join(controller_names())}, or 'package.module:Class'",
            nearest_line(lines, loc),
        )
    ]


def _semantic_issues(
    spec: schema.Scenario, base_dir: Path, lines: dict[tuple[Any, ...], int]
) -> list[ConfigIssue]:
    """Checks that need more than one field or outside knowledge (files)."""
    issues: list[ConfigIssue] = []

    def add(loc: tuple[Any, ...], message: str) -> None:
        issues.append(ConfigIssue(format_path(loc), message, nearest_line(lines, loc)))

    files: list[tuple[tuple[Any, ...], str]] = []
    if spec.evs is not None and spec.evs.sessions_csv:
        files.append((("evs", "sessions_csv"), spec.evs.sessions_csv))
    if spec.tariff.carbon.csv:
        files.append((("tariff", "carbon", "csv"), spec.tariff.carbon.csv))
    if spec.tariff.price_csv:
        files.append((("tariff", "price_csv"), spec.tariff.price_csv))
    for index, load in enumerate(spec.assets.loads):
        if load.profile.startswith("csv:"):
            files.append((("assets", "loads", index, "profile"), load.profile[4:]))
    for index, pv in enumerate(spec.assets.pv):
        if not pv.weather.startswith("tmy:"):
            files.append((("assets", "pv", index, "weather"), pv.weather))
    for loc, relative in files:
        resolved = Path(relative) if Path(relative).is_absolute() else base_dir / relative
        if not resolved.is_file():
            add(loc, f"file not found: {relative} (looked at {resolved})")
    issues.extend(device_id_issues(spec.assets, lines))
    if spec.grid is None:
        for section in ("chargers", "pv", "loads", "batteries"):
            for index, entry in enumerate(getattr(spec.assets, section)):
                if entry.bus is not None or getattr(entry, "buses", None):
                    add(
                        ("assets", section, index, "bus"),
                        "a bus is given but the scenario has no grid section",
                    )
    if spec.faults:
        named = device_ids(spec.assets)
        for index, fault in enumerate(spec.faults):
            for loc, message in fault_devices(fault, named)[1]:
                add(("faults", index, *loc), message)
    return issues


def device_id_issues(
    assets: schema.AssetsSpec, lines: dict[tuple[Any, ...], int]
) -> list[ConfigIssue]:
    """One issue per :class:`~qubit_sim.scenario.fault_targets.DeviceIdClash` of ``assets``, at
    the later entry's ``id``, naming the shared ids and the earlier entries with their lines.

    Args:
        assets: The validated ``assets`` section.
        lines: The YAML line of each path (see :func:`yaml_line_map`).
    """
    clashes = device_id_clashes(assets)
    if not clashes:
        return []
    named = entry_device_ids(assets)

    def where(entry: tuple[str, int]) -> str:
        loc = ("assets", *entry)
        line = nearest_line(lines, loc + ("id",))
        spec = getattr(assets, entry[0])[entry[1]]
        text = format_path(loc) + (f" (line {line})" if line is not None else "")
        devices = named[entry]
        if spec.id is not None and devices != [spec.id]:
            text += f", whose id {spec.id!r} numbers its {len(devices)} devices {_listed(devices)}"
        return text

    issues = []
    for clash in clashes:
        issues.append(
            ConfigIssue(
                format_path(("assets", *clash.entry, "id")),
                _clash_message(clash, named[clash.entry], [where(e) for e in clash.earlier]),
                nearest_line(lines, ("assets", *clash.entry, "id")),
            )
        )
    return issues


def _clash_message(clash: DeviceIdClash, devices: list[str], earlier: list[str]) -> str:
    others = " and ".join(earlier)
    if clash.device_ids:
        shared = ", ".join(repr(device) for device in clash.device_ids)
        plural = "s" if len(clash.device_ids) > 1 else ""
        head = f"device id{plural} {shared} {'are' if plural else 'is'} already used by {others}"
        if clash.given_id is not None and devices != [clash.given_id]:
            numbered = _listed(devices)
            head += f" (this entry's id {clash.given_id!r} numbers its devices {numbered})"
    else:
        head = f"id {clash.given_id!r} is already used by {others}"
    return (
        f"{head}; every device needs an id of its own (chargers, batteries, PV plants and loads "
        "share one namespace): give this entry another id, or leave its `id` out to have its devices "
        "numbered automatically"
    )


def _listed(devices: list[str]) -> str:
    """``ac1, ac2, ac3`` or, for a long group, ``ac1, ..., ac20``."""
    return ", ".join(devices if len(devices) <= 4 else [devices[0], "...", devices[-1]])
