"""What a tool call does to the world, read from its name and arguments: delete, write, send, credential.

Rules ask one question of every tool step ("is this destructive? does it send data out? to where?"), so
the answer is computed here once, with the character range in the step's own `tool_arguments` text that
shows it. String values are located in the raw text so evidence offsets index exactly what the UI shows.

Arguments are read in every shape a framework writes them (JSON object or string, positional list, a
call's args/kwargs, a Python repr) by `arguments.py`; the stored text is never rewritten.
Shell commands are parsed with bashlex (`shell.py`) and SQL with sqlglot (`sql.py`); URLs are read from
the whole arguments text, so a destination in a query string, a body or a header counts (`urls.py`).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from workbench.model import Step, StepKind
from workbench.policies.arguments import Value as Value
from workbench.policies.arguments import read_arguments
from workbench.policies.shell import destructive_shell as destructive_shell
from workbench.policies.sql import destructive_sql as destructive_sql
from workbench.policies.sql import looks_like_sql as looks_like_sql
from workbench.policies.sql import sql_writes as sql_writes
from workbench.policies.urls import find_urls, query_payload
from workbench.policies.urls import host_of as host_of


class ActionClass(enum.StrEnum):
    """What a tool call does to the world, from most to least consequential.

    The strings are what rule options in YAML name (`action_classes: [delete, send]`) and what finding
    details record, so they never change; the rules file is checked against this list.
    """

    DELETE = "delete"
    SEND = "send"
    CREDENTIAL = "credential"
    PAYMENT = "payment"
    WRITE = "write"
    READ = "read"


# Short names for the members, for rule code (built-in and user rules) that lists classes often.
DELETE, SEND, CREDENTIAL = ActionClass.DELETE, ActionClass.SEND, ActionClass.CREDENTIAL
PAYMENT, WRITE, READ = ActionClass.PAYMENT, ActionClass.WRITE, ActionClass.READ


@dataclass(frozen=True, slots=True)
class Evidence:
    """A character range of one step field, and why it matters."""

    field: str
    start: int
    end: int
    text: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Action:
    """What one tool step does: its classes (delete/send/...), with evidence for each, and destinations."""

    classes: frozenset[ActionClass]
    evidence: dict[ActionClass, Evidence] = field(default_factory=dict)
    destructive: tuple[Evidence, ...] = ()
    hosts: tuple[tuple[str, Evidence], ...] = ()  # (host, where it was named) for sends

    @property
    def consequential(self) -> bool:
        return bool(self.classes - {READ})


# --- raw text access ---------------------------------------------------------------------------------


def string_values(raw: str) -> list[Value]:
    """String values of the arguments, whatever their shape (`arguments.read_arguments`), with raw ranges."""
    return list(read_arguments(raw).values)


def _evidence(fieldname: str, raw: str, start: int, end: int, reason: str) -> Evidence:
    return Evidence(fieldname, start, end, raw[start:end], reason)


# --- names ---------------------------------------------------------------------------------------------

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def ordered_words(name: str) -> list[str]:
    """deleteBucket, delete-bucket -> ['delete', 'bucket']; fs.delete_file -> ['fs', 'delete', 'file']."""
    snake = _CAMEL.sub("_", name).lower()
    return [w for w in re.split(r"[^a-z0-9]+", snake) if w]


def name_words(name: str) -> set[str]:
    return set(ordered_words(name))


_NAME_CLASSES: tuple[tuple[ActionClass, frozenset[str]], ...] = (
    (
        DELETE,
        frozenset(
            "delete remove rm rmdir unlink destroy terminate purge drop wipe erase truncate shred".split()
        ),
    ),
    (
        SEND,
        frozenset(
            "send post upload email mail webhook notify publish share sms tweet slack transmit submit "
            "exfiltrate forward".split()
        ),
    ),
    (
        CREDENTIAL,
        frozenset("credentials credential assume sudo elevate impersonate grant secret token".split()),
    ),
    (PAYMENT, frozenset("pay payment transfer charge refund payout wire".split())),
    (
        WRITE,
        frozenset(
            "write save create update insert put append edit modify commit deploy move rename "
            "patch chmod chown install".split()
        ),
    ),
)
_READ_WORDS = frozenset("get read list fetch search query find lookup describe show view download".split())
_SHELL_KEYS = frozenset({"command", "cmd", "script", "shell", "bash", "commands"})
_SHELL_TOOLS = frozenset({"shell", "bash", "sh", "terminal", "exec", "command", "subprocess", "run_command"})
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_RECIPIENT_KEYS = frozenset({"to", "cc", "bcc", "recipient", "recipients", "email", "address", "channel"})
_HTTP_METHOD = re.compile(r'"method"\s*:\s*"(POST|PUT|PATCH|DELETE)"', re.IGNORECASE)


# --- code --------------------------------------------------------------------------------------------
# Code-interpreter tools delete through the language's file APIs rather than a shell.

_CODE_KEYS = frozenset({"code", "source", "python", "program", "snippet", "source_code"})
_CODE_DELETE = re.compile(
    r"\b(shutil\.rmtree|os\.remove|os\.unlink|os\.rmdir|os\.removedirs|\.unlink|\.rmdir|fs\.rmSync|"
    r"fs\.rm|fs\.unlinkSync|fs\.rmdirSync|rimraf|FileUtils\.rm_rf|file\.remove)\s*\("
)

# --- classification ------------------------------------------------------------------------------------


def classify(step: Step) -> Action:
    """What a tool step does. Non-tool steps do nothing to the world: an empty Action."""
    if step.kind != StepKind.TOOL and not step.tool_name:
        return Action(frozenset())
    raw = step.tool_arguments or ""
    fld = "tool_arguments"
    words = name_words(step.tool_name or step.name)
    classes: set[ActionClass] = set()
    evidence: dict[ActionClass, Evidence] = {}
    destructive: list[Evidence] = []
    name_ev = Evidence("tool_name", 0, len(step.tool_name or ""), step.tool_name or "", "tool name")

    # Tool names lead with their verb (read_email, send_email, DeleteBucket): the first word that names
    # an action decides, so "read_email" is a read although "email" alone would mean a send.
    # Credentials count wherever they appear in the name (get_credentials obtains one).
    for word in ordered_words(step.tool_name or step.name):
        if word in _READ_WORDS:
            break
        verb = next((cls for cls, vocab in _NAME_CLASSES if cls != CREDENTIAL and word in vocab), None)
        if verb is not None:
            classes.add(verb)
            evidence.setdefault(verb, name_ev)
            break
    if words & dict(_NAME_CLASSES)[CREDENTIAL]:
        classes.add(CREDENTIAL)
        evidence.setdefault(CREDENTIAL, name_ev)
    args = read_arguments(raw)
    values = list(args.values)
    is_shell_tool = bool(words & _SHELL_TOOLS)
    # A tool whose whole input is one string (LangChain's one-argument tools, a bare command) may be
    # handed a command line under any name: the shell parser decides, and it flags only commands.
    sole = args.sole_string
    for v in values:
        if looks_like_sql(v.text):
            for i, j, why in destructive_sql(v.text):
                s, e = v.span(i, j)
                destructive.append(_evidence(fld, raw, s, e, why))
            if sql_writes(v.text):
                s, e = v.span(0, len(v.text))
                classes.add(WRITE)
                evidence.setdefault(WRITE, _evidence(fld, raw, s, e, "data-modifying SQL"))
        elif v.key.lower() in _CODE_KEYS:
            for m in _CODE_DELETE.finditer(v.text):
                s, e = v.span(m.start(), m.end())
                destructive.append(_evidence(fld, raw, s, e, f"code deletes files or trees ({m.group(1)})"))
            if v.text.strip():
                classes.add(WRITE)
                s, e = v.span(0, len(v.text))
                evidence.setdefault(WRITE, _evidence(fld, raw, s, e, "code execution"))
        elif (
            v.key.lower() in _SHELL_KEYS
            or (is_shell_tool and v.key.lower() in ("", "input", "args"))
            or v is sole
        ):
            for i, j, why in destructive_shell(v.text):
                s, e = v.span(i, j)
                destructive.append(_evidence(fld, raw, s, e, why))
            if v.text.strip():
                classes.add(WRITE)
                s, e = v.span(0, len(v.text))
                evidence.setdefault(WRITE, _evidence(fld, raw, s, e, "shell command"))
    method = _HTTP_METHOD.search(raw)
    if method:
        http_verb = method.group(1).upper()
        ev = _evidence(fld, raw, method.start(1), method.end(1), f"HTTP {http_verb}")
        if http_verb == "DELETE":
            destructive.append(Evidence(ev.field, ev.start, ev.end, ev.text, "HTTP DELETE of a resource"))
        else:
            classes.add(SEND)
            evidence.setdefault(SEND, ev)
    if DELETE in classes and not destructive:
        # A tool whose name says it deletes (delete_file, DeleteBucket...): the target is the evidence.
        target = next((v for v in values if v.text.strip()), None)
        if target is not None:
            s, e = target.span(0, len(target.text))
            destructive.append(
                _evidence(fld, raw, s, e, f"{step.tool_name} deletes {target.key or 'its target'}")
            )
        else:
            destructive.append(
                Evidence(name_ev.field, name_ev.start, name_ev.end, name_ev.text, "deleting tool")
            )
    if destructive:
        classes.add(DELETE)
        evidence[DELETE] = destructive[0]
    hosts: list[tuple[str, Evidence]] = []
    urls = find_urls(raw, [(v.key, v.text, v.start if v.exact else -1) for v in values])
    if SEND not in classes:
        # A GET carries data out in its query string as well as a POST does in its body.
        for u in urls:
            carried = query_payload(u.text)
            if carried:
                classes.add(SEND)
                evidence.setdefault(SEND, _evidence(fld, raw, u.start, u.end, carried))
                break
    if SEND in classes:
        for u in urls:
            hosts.append((u.host, _evidence(fld, raw, u.start, u.end, "destination URL")))
        for v in values:
            if v.key.lower() in _RECIPIENT_KEYS:
                for m in _EMAIL.finditer(v.text):
                    s, e = v.span(m.start(), m.end())
                    hosts.append((m.group(1).lower(), _evidence(fld, raw, s, e, "recipient")))
    if hosts:
        evidence[SEND] = hosts[0][1]
    if not classes and (words & _READ_WORDS or step.kind == StepKind.TOOL):
        classes.add(READ)
    return Action(frozenset(classes), evidence, tuple(destructive), tuple(hosts))
