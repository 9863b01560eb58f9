"""The built-in policy rules. Each says what it looks for, why it matters, and quotes its evidence.

Thresholds, allow-lists and patterns are options with defaults here; `default_rules.yaml` shows them all
and a user's rules file overrides them (see `config.py`).
"""

from __future__ import annotations

from workbench.policies.builtin.approval import GuardrailBypass, PrivilegeEscalation, UnapprovedAction
from workbench.policies.builtin.destructive import DestructiveAction
from workbench.policies.builtin.egress import EgressAllowlist, host_allowed
from workbench.policies.builtin.injection import (
    PromptInjection,
    TaintChain,
    distinctive_tokens,
    is_source,
    shingles,
)
from workbench.policies.builtin.loops import ReasoningCost, RetryLoop
from workbench.policies.builtin.mismatch import ScratchpadMismatch
from workbench.policies.builtin.override import PolicyOverride
from workbench.policies.builtin.sensitive import SensitiveData
from workbench.policies.rules import Rule

BUILTIN_RULES: tuple[type[Rule], ...] = (
    DestructiveAction,
    EgressAllowlist,
    SensitiveData,
    PromptInjection,
    TaintChain,
    UnapprovedAction,
    GuardrailBypass,
    PrivilegeEscalation,
    RetryLoop,
    ReasoningCost,
    ScratchpadMismatch,
    PolicyOverride,
)

__all__ = [
    "BUILTIN_RULES",
    "DestructiveAction",
    "EgressAllowlist",
    "GuardrailBypass",
    "PolicyOverride",
    "PrivilegeEscalation",
    "PromptInjection",
    "ReasoningCost",
    "RetryLoop",
    "ScratchpadMismatch",
    "SensitiveData",
    "TaintChain",
    "UnapprovedAction",
    "distinctive_tokens",
    "host_allowed",
    "is_source",
    "shingles",
]
