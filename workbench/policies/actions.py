"""What a tool call does to the world, read from its name and arguments: delete, write, send, credential.

Rules ask one question of every tool step ("is this destructive? does it send data out? to where?"), so
the answer is computed here once, with the character range in the step's own `tool_arguments` text that
shows it. Arguments arrive as JSON text from most conventions, but any text works: string values are
located in the raw text so evidence offsets index exactly what the UI shows.

Shell commands are split with `shlex`; SQL is read by a small lexer that blanks out literals and comments
(no SQL parser library ships with the project, and deciding "DROP / TRUNCATE / DELETE without WHERE"
needs statement boundaries and keywords, not a grammar).
"""

from __future__ import annotations

import enum
import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from workbench.model import Step, StepKind


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

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


@dataclass(frozen=True, slots=True)
class Value:
    """A string value found in the arguments: its key (if any), decoded text and where it lies raw."""

    key: str
    text: str
    start: int  # raw offset of text[0]
    exact: bool  # True when raw[start:start+len(text)] == text (no escapes), so sub-ranges map 1:1

    def span(self, i: int, j: int) -> tuple[int, int]:
        """Raw offsets of text[i:j] (the whole literal when escapes make a 1:1 mapping impossible)."""
        if self.exact:
            return self.start + i, self.start + j
        return self.start, self.start + len(self.text)


def string_values(raw: str) -> list[Value]:
    """String values of a JSON text with their keys; a text that is not JSON is one value, key ''."""
    stripped = raw.lstrip()
    if not stripped.startswith(("{", "[")):
        return [Value("", raw, 0, True)] if raw else []
    out: list[Value] = []
    key = ""
    for m in _STRING.finditer(raw):
        literal = m.group(0)
        try:
            text = json.loads(literal)
        except ValueError:
            continue
        after = raw[m.end() : m.end() + 40].lstrip()
        if after.startswith(":"):
            key = text
            continue
        exact = "\\" not in literal
        out.append(Value(key, text, m.start() + 1, exact))
    return out


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
_URL = re.compile(r"https?://[^\s\"'<>\\)]+", re.IGNORECASE)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_RECIPIENT_KEYS = frozenset({"to", "cc", "bcc", "recipient", "recipients", "email", "address", "channel"})
_HTTP_METHOD = re.compile(r'"method"\s*:\s*"(POST|PUT|PATCH|DELETE)"', re.IGNORECASE)


# --- SQL -----------------------------------------------------------------------------------------------

_SQL_BLANK = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.DOTALL)
_SQL_START = re.compile(
    r"^\s*(SELECT|WITH|INSERT|UPDATE|DELETE|DROP|TRUNCATE|ALTER|CREATE|REPLACE|MERGE|GRANT|REVOKE|VACUUM)\b",
    re.IGNORECASE,
)


def _blank_sql(sql: str) -> str:
    """The statement with literals and comments replaced by spaces: keywords stay at their offsets."""
    return _SQL_BLANK.sub(lambda m: " " * len(m.group(0)), sql)


def sql_statements(sql: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, blanked text) of each statement in `sql`, split on semicolons outside literals."""
    blank = _blank_sql(sql)
    at = 0
    for part in blank.split(";"):
        lead = len(part) - len(part.lstrip())
        text = part.strip()
        if text:
            yield at + lead, at + lead + len(text), text
        at += len(part) + 1


# A WHERE that holds for every row is no WHERE at all ("DELETE FROM users WHERE 1=1").
_TRIVIAL_WHERE = re.compile(r"\bWHERE\s+(?:1\s*=\s*1|TRUE|1|NOT\s+FALSE)\s*$", re.IGNORECASE)


def destructive_sql(sql: str) -> list[tuple[int, int, str]]:
    """(start, end, why) of each destructive statement: DROP, TRUNCATE, ALTER ... DROP, and DELETE or
    UPDATE without a WHERE clause, or with one that holds for every row (which touch every row)."""
    out = []
    for start, end, text in sql_statements(sql):
        m = _SQL_START.match(text)
        if not m:
            continue
        verb = m.group(1).upper()
        upper = _TRIVIAL_WHERE.sub("", text).upper()
        if verb == "DROP":
            out.append((start, end, "DROP removes the object and all its data"))
        elif verb == "TRUNCATE":
            out.append((start, end, "TRUNCATE removes every row"))
        elif verb == "ALTER" and re.search(r"\bDROP\b", upper):
            out.append((start, end, "ALTER ... DROP removes a column or constraint with its data"))
        elif verb == "DELETE" and not re.search(r"\bWHERE\b", upper):
            out.append((start, end, "DELETE without WHERE removes every row"))
        elif verb == "UPDATE" and not re.search(r"\bWHERE\b", upper):
            out.append((start, end, "UPDATE without WHERE overwrites every row"))
        elif (
            verb == "WITH" and re.search(r"\b(DELETE|UPDATE)\b", upper) and not re.search(r"\bWHERE\b", upper)
        ):
            out.append((start, end, "data-modifying CTE without WHERE touches every row"))
    return out


def sql_writes(sql: str) -> bool:
    return any(
        (m := _SQL_START.match(text)) and m.group(1).upper() not in ("SELECT", "WITH")
        for _, _, text in sql_statements(sql)
    )


def looks_like_sql(text: str) -> bool:
    return bool(_SQL_START.match(_blank_sql(text)))


# --- code --------------------------------------------------------------------------------------------
# Code-interpreter tools delete through the language's file APIs rather than a shell.

_CODE_KEYS = frozenset({"code", "source", "python", "program", "snippet", "source_code"})
_CODE_DELETE = re.compile(
    r"\b(shutil\.rmtree|os\.remove|os\.unlink|os\.rmdir|os\.removedirs|\.unlink|\.rmdir|fs\.rmSync|"
    r"fs\.rm|fs\.unlinkSync|fs\.rmdirSync|rimraf|FileUtils\.rm_rf|file\.remove)\s*\("
)

# --- shell ---------------------------------------------------------------------------------------------

_SHELL_SPLIT = re.compile(r"&&|\|\||;|\||\n")
_CLOUD_DELETE = re.compile(
    r"\b(delete|destroy|terminate|remove|rb|purge)\b|\bdelete-[a-z-]+|\bterminate-instances\b", re.IGNORECASE
)
_CLOUD_CLIS = frozenset({"aws", "gcloud", "az", "kubectl", "terraform", "gsutil", "doctl", "heroku", "helm"})


def _shell_segment_destructive(words: list[str]) -> str | None:
    """Why this one simple command destroys data, or None."""
    while words and (words[0] in ("sudo", "nohup", "time", "env") or "=" in words[0]):
        words = words[1:]
    if not words:
        return None
    prog = words[0].rsplit("/", 1)[-1]
    flags = {w for w in words[1:] if w.startswith("-")}
    letters = {c for f in flags if not f.startswith("--") for c in f[1:]}
    if prog == "rm":
        recursive = "r" in letters or "R" in letters or "--recursive" in flags
        force = "f" in letters or "--force" in flags
        if recursive and force:
            return "rm -rf deletes a directory tree without asking"
        if recursive:
            return "rm -r deletes a directory tree"
        return "rm deletes files"
    if prog in ("shred", "mkfs", "wipefs") or prog.startswith("mkfs."):
        return f"{prog} destroys data irrecoverably"
    if prog == "dd" and any(w.startswith("of=/dev/") for w in words):
        return "dd onto a device overwrites it"
    if prog == "find" and "-delete" in words:
        return "find -delete deletes every match"
    if prog == "git" and (
        ("push" in words and ({"--force", "-f"} & flags))
        or ("reset" in words and "--hard" in flags)
        or ("clean" in words and "f" in letters)
    ):
        return "git history or work tree destroyed"
    if prog in _CLOUD_CLIS:
        if prog == "terraform" and "destroy" in words:
            return "terraform destroy removes the managed infrastructure"
        if (
            prog in ("aws", "gsutil")
            and any(w in ("rm", "rb") for w in words)
            and ("--recursive" in flags or "-r" in flags or "rb" in words)
        ):
            return "recursive delete of cloud storage"
        if any(_CLOUD_DELETE.fullmatch(w) or w.startswith("delete-") for w in words[1:]):
            return f"{prog} deletes cloud resources"
    if prog in ("docker", "podman") and ("prune" in words or "rm" in words or "rmi" in words):
        return f"{prog} removes containers, images or volumes"
    if prog == "truncate" and ("-s" in words or "--size" in flags):
        return "truncate empties files"
    return None


# SQL handed to a database client on the command line (`psql -c "DELETE FROM users"`): the statement is
# a quoted argument, read with the SQL rules. Only after a client's name, so `echo "DROP TABLE x"` is not.
_SQL_CLIENTS = re.compile(
    r"(?<![\w.-])(psql|mysql|mariadb|sqlite3|duckdb|sqlcmd|clickhouse-client|snowsql|cockroach|bq)\b"
)
_QUOTED = re.compile(r"'([^']*)'|\"((?:[^\"\\]|\\.)*)\"")


def _client_sql(command: str) -> list[tuple[int, int, str]]:
    out = []
    for client in _SQL_CLIENTS.finditer(command):
        pos = client.end()
        # the client's own quoted arguments: up to the next |, ;, && or newline outside quotes
        while (q := _QUOTED.search(command, pos)) and not _SHELL_SPLIT.search(command, pos, q.start()):
            pos = q.end()
            group = 1 if q.group(1) is not None else 2
            base = q.start(group)
            for i, j, why in destructive_sql(q.group(group)):
                out.append((base + i, base + j, f"{why} (run through {client.group(1)})"))
    return out


def destructive_shell(command: str) -> list[tuple[int, int, str]]:
    """(start, end, why) of each destructive simple command in a shell command line, and of each
    destructive SQL statement it passes to a database client."""
    out = _client_sql(command)
    at = 0
    for m in list(_SHELL_SPLIT.finditer(command)) + [None]:
        end = m.start() if m else len(command)
        segment = command[at:end]
        try:
            words = shlex.split(segment, comments=True)
        except ValueError:
            words = segment.split()
        why = _shell_segment_destructive(words)
        if why:
            lead = len(segment) - len(segment.lstrip())
            out.append((at + lead, at + len(segment.rstrip()), why))
        at = m.end() if m else end
    return sorted(out)


# --- classification ------------------------------------------------------------------------------------


def host_of(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


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
    values = string_values(raw)
    is_shell_tool = bool(words & _SHELL_TOOLS)
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
        elif v.key.lower() in _SHELL_KEYS or (is_shell_tool and v.key.lower() in ("", "input", "args")):
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
    if SEND in classes:
        for m in _URL.finditer(raw):
            host = host_of(m.group(0))
            if host:
                hosts.append((host.lower(), _evidence(fld, raw, m.start(), m.end(), "destination URL")))
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
