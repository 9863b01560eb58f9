"""Rule configuration in YAML: which rules run, at what severity, with which options.

The shipped `default_rules.yaml` lists every built-in rule with its options; a user's file (the
`rules_file` setting) overrides it key by key. Every error names the file and the line (PyYAML's marks):
a typo in a rule id or option must not silently switch a control off.

    version: 1
    trusted_tools: [get_current_time, "internal_*"]
    rules:
      egress-allowlist:
        severity: high
        allow_hosts: ["*.acme.example", "api.openai.com"]
      retry-loop:
        enabled: false

User rules in Python (the `rules_path` setting: a .py file or a folder of them) define `Rule` subclasses;
every subclass with an `id` found there is registered beside the built-ins.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import WorkbenchError
from workbench.model import Severity
from workbench.policies.actions import ActionClass
from workbench.policies.rules import Rule

CONFIG_VERSION = 1
# The top-level key naming tools whose results are trusted input (every other result is untrusted);
# `parse_rules_yaml` returns it as a pseudo rule of that name holding one key of that name.
TRUSTED_TOOLS = "trusted_tools"
_RULE_KEYS = ("enabled", "severity")


class RuleConfigError(WorkbenchError):
    """A rules file or a user rule module that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class RuleSetting:
    """One rule's configuration as read, with where each key came from (for error messages)."""

    enabled: bool = True
    severity: Severity | None = None
    options: tuple[tuple[str, Any], ...] = ()


def default_rules_text() -> str:
    return resources.files("workbench.policies").joinpath("default_rules.yaml").read_text(encoding="utf-8")


def _where(path: str, node: yaml.Node) -> str:
    mark = node.start_mark
    return f"{path}:{mark.line + 1}:{mark.column + 1}"


def parse_rules_yaml(text: str, path: str, registry: dict[str, type[Rule]]) -> dict[str, dict[str, Any]]:
    """{rule id: {key: value}} from one YAML text, checked against the registry's rules and options."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
            raise RuleConfigError(f"{where}: not valid YAML: {exc.problem or exc}") from exc
        except yaml.YAMLError as exc:
            raise RuleConfigError(f"{path}: not valid YAML: {exc}") from exc
        if root is None:
            return {}
        if not isinstance(root, yaml.MappingNode):
            raise RuleConfigError(
                f"{_where(path, root)}: a rules file is a mapping with 'version' and 'rules'"
            )
        out: dict[str, dict[str, Any]] = {}
        for key_node, value_node in root.value:
            key = loader.construct_object(key_node, deep=True)
            if key == "version":
                version = loader.construct_object(value_node, deep=True)
                if version != CONFIG_VERSION:
                    raise RuleConfigError(
                        f"{_where(path, value_node)}: version {version!r} is not supported "
                        f"(expected {CONFIG_VERSION})"
                    )
            elif key == TRUSTED_TOOLS:
                value = loader.construct_object(value_node, deep=True)
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise RuleConfigError(
                        f"{_where(path, value_node)}: 'trusted_tools' must be a list of tool names or globs"
                    )
                out[TRUSTED_TOOLS] = {TRUSTED_TOOLS: value}
            elif key == "rules":
                if not isinstance(value_node, yaml.MappingNode):
                    raise RuleConfigError(
                        f"{_where(path, value_node)}: 'rules' must map rule ids to settings"
                    )
                for rid_node, rule_node in value_node.value:
                    rid = loader.construct_object(rid_node, deep=True)
                    if rid not in registry:
                        raise RuleConfigError(
                            f"{_where(path, rid_node)}: unknown rule id {rid!r}; "
                            f"known: {', '.join(sorted(registry))}"
                        )
                    out[rid] = _rule_settings(loader, path, registry[rid], rule_node)
            else:
                raise RuleConfigError(
                    f"{_where(path, key_node)}: unknown key {key!r} "
                    "(expected 'version', 'trusted_tools', 'rules')"
                )
        return out
    finally:
        loader.dispose()


def _rule_settings(loader: yaml.SafeLoader, path: str, rule: type[Rule], node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise RuleConfigError(f"{_where(path, node)}: settings of rule {rule.id} must be a mapping")
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        value = loader.construct_object(value_node, deep=True)
        where = _where(path, value_node)
        if key == "enabled":
            if not isinstance(value, bool):
                raise RuleConfigError(f"{where}: {rule.id}.enabled must be true or false, not {value!r}")
        elif key == "severity":
            try:
                value = Severity(str(value).lower())
            except ValueError:
                raise RuleConfigError(
                    f"{where}: {rule.id}.severity {value!r} is not one of "
                    + ", ".join(s.value for s in Severity)
                ) from None
        elif key in rule.options:
            value = _check_option(rule, key, value, where)
        else:
            known = ", ".join([*_RULE_KEYS, *sorted(rule.options)])
            raise RuleConfigError(
                f"{_where(path, key_node)}: unknown key {key!r} for rule {rule.id}; known: {known}"
            )
        out[key] = value
    return out


def _check_option(rule: type[Rule], key: str, value: Any, where: str) -> Any:
    default = rule.options[key]
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
        if ok and key.endswith("severity"):
            try:
                Severity(value)
            except ValueError:
                raise RuleConfigError(f"{where}: {rule.id}.{key} {value!r} is not a severity") from None
    elif isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if ok and default and all(isinstance(v, ActionClass) for v in default):
            # A misspelt class would silently match no action: the rule would never fire.
            unknown = [v for v in value if v not in set(ActionClass)]
            if unknown:
                raise RuleConfigError(
                    f"{where}: {rule.id}.{key} names unknown action class(es) {unknown}; known: "
                    + ", ".join(ActionClass)
                )
    else:
        ok = True
    if not ok:
        raise RuleConfigError(
            f"{where}: {rule.id}.{key} must be {type(default).__name__}"
            + (" of strings" if isinstance(default, list) else "")
            + f", not {value!r}"
        )
    return value


def load_user_rules(path: Path) -> list[type[Rule]]:
    """Rule subclasses defined in a .py file, or in every .py file of a folder (sorted by name)."""
    files = sorted(path.glob("*.py")) if path.is_dir() else [path]
    if not path.exists():
        raise RuleConfigError(f"{path}: rules path does not exist (setting WORKBENCH_RULES_PATH)")
    found: list[type[Rule]] = []
    for file in files:
        name = f"workbench_user_rules_{file.stem}"
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise RuleConfigError(f"{file}: not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            line = ""
            tb = exc.__traceback__
            while tb is not None:
                if tb.tb_frame.f_code.co_filename == str(file):
                    line = f":{tb.tb_lineno}"
                tb = tb.tb_next
            if isinstance(exc, SyntaxError) and exc.lineno:
                line = f":{exc.lineno}"
            raise RuleConfigError(
                f"{file}{line}: cannot load user rules: {type(exc).__name__}: {exc}"
            ) from exc
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Rule) and obj is not Rule and obj.__module__ == name and hasattr(obj, "id"):
                for attr in ("title", "description", "rationale", "default_severity"):
                    if not hasattr(obj, attr):
                        raise RuleConfigError(
                            f"{file}: rule class {obj.__name__} lacks the attribute {attr!r}"
                        )
                found.append(obj)
    return found
