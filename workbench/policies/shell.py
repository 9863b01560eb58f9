"""What a shell command line does, read with a parser (bashlex): which simple commands destroy data.

Splitting on `;`, `&&` and `|` with a regular expression before `shlex` cuts quoted text apart, so
`echo "done; rm -rf ./build"` looked like an `rm -rf`; bashlex builds the real tree (lists, pipelines,
subshells, `if`/`for` bodies, command substitutions), so only commands that would run are judged, each
with its character range in the command line. Wrappers that run another command (`sudo`, `env`, `xargs`,
`timeout`, `bash -c "..."`) are unwrapped; SQL handed to a database client (`psql -c`, `mysql -e`,
`sqlite3 app.db "..."`, or `echo "..." | psql`) is read with the SQL rules in the client's dialect.

A command line bashlex cannot parse (it does not know every bash extension) falls back to `shlex` with
punctuation splitting, which still respects quotes; its findings then cover the whole command line.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import bashlex
import bashlex.ast
import bashlex.errors

from workbench.policies.sql import CLIENT_DIALECTS, destructive_sql, looks_like_sql

_CLOUD_CLIS = frozenset({"aws", "gcloud", "az", "kubectl", "terraform", "gsutil", "doctl", "heroku", "helm"})
_CLOUD_DELETE_WORDS = frozenset({"delete", "destroy", "terminate", "remove", "rb", "purge"})
_SHELLS = frozenset({"bash", "sh", "zsh", "dash", "ksh"})
# Wrappers that run the rest of their arguments as a command, and their options that take a value.
_WRAPPERS: dict[str, frozenset[str]] = {
    "sudo": frozenset({"-u", "-g", "-C", "-h", "-p", "-r", "-t", "-U", "-D"}),
    "doas": frozenset({"-u", "-C"}),
    "env": frozenset({"-u", "-C", "-S"}),
    "nohup": frozenset(),
    "time": frozenset({"-f", "-o"}),
    "nice": frozenset({"-n"}),
    "ionice": frozenset({"-c", "-n", "-p"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "exec": frozenset({"-a"}),
    "command": frozenset(),
    "xargs": frozenset({"-I", "-n", "-P", "-d", "-L", "-a", "-E", "-s", "--max-args", "--max-procs"}),
    "timeout": frozenset({"-s", "-k", "--signal", "--kill-after"}),
    "watch": frozenset({"-n", "-d"}),
}
_TAKES_POSITIONAL = frozenset({"timeout", "chroot"})  # a duration or directory before the command


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a simple command: its text after quote removal and its range in the command line."""

    text: str
    start: int
    end: int


def _inner_offset(line: str, w: Word) -> int | None:
    """Offset in `line` of w.text[0] when the raw word is the text itself or the text in plain quotes."""
    raw = line[w.start : w.end]
    if raw == w.text:
        return w.start
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"" and raw[1:-1] == w.text:
        return w.start + 1
    return None


def _unwrap(words: list[Word]) -> list[Word]:
    """The command a wrapper runs: `sudo -u root rm x` -> `rm x`; `xargs -0 rm -f` -> `rm -f`."""
    while words:
        prog = words[0].text.rsplit("/", 1)[-1]
        if "=" in words[0].text and not words[0].text.startswith("-"):
            words = words[1:]  # VAR=value before the command, or env's assignments
            continue
        if prog not in _WRAPPERS:
            return words
        takes = _WRAPPERS[prog]
        i = 1
        while i < len(words) and (words[i].text.startswith("-") or "=" in words[i].text):
            i += 2 if words[i].text in takes else 1
        if prog in _TAKES_POSITIONAL and i < len(words):
            i += 1
        words = words[i:]
    return words


def _simple_destructive(words: list[str]) -> str | None:
    """Why one unwrapped simple command destroys data, or None."""
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
    if prog in ("rmdir", "unlink"):
        return f"{prog} deletes files or directories"
    if prog in ("shred", "mkfs", "wipefs") or prog.startswith("mkfs."):
        return f"{prog} destroys data irrecoverably"
    if prog == "dd" and any(w.startswith("of=/dev/") for w in words):
        return "dd onto a device overwrites it"
    if prog == "find" and ("-delete" in words or ("-exec" in words and "rm" in words)):
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
        if any(w.lower() in _CLOUD_DELETE_WORDS or w.startswith("delete-") for w in words[1:]):
            return f"{prog} deletes cloud resources"
    if prog in ("docker", "podman") and ("prune" in words or "rm" in words or "rmi" in words):
        return f"{prog} removes containers, images or volumes"
    if prog == "truncate" and ("-s" in words or "--size" in flags):
        return "truncate empties files"
    return None


def _sql_words(line: str, words: list[Word], dialect: str, client: str) -> list[tuple[int, int, str]]:
    out = []
    for w in words:
        if w.text.startswith("-") or not looks_like_sql(w.text):
            continue
        base = _inner_offset(line, w)
        for i, j, why in destructive_sql(w.text, dialect):
            s, e = (base + i, base + j) if base is not None else (w.start, w.end)
            out.append((s, e, f"{why} (run through {client})"))
    return out


class _Visitor(bashlex.ast.nodevisitor):  # type: ignore[misc]
    """Collects (start, end, why) for every destructive command anywhere in the tree."""

    def __init__(self, line: str, depth: int) -> None:
        self.line = line
        self.depth = depth
        self.found: list[tuple[int, int, str]] = []

    def visitpipeline(self, node: bashlex.ast.node, parts: list[bashlex.ast.node]) -> None:
        # `echo "DROP TABLE x" | psql`: the statement is the producer's argument, run by the client.
        commands = [p for p in parts if p.kind == "command"]
        for left, right in zip(commands, commands[1:], strict=False):
            lw, rw = _unwrap(_words(left)), _unwrap(_words(right))
            if lw and rw and lw[0].text in ("echo", "printf"):
                client = rw[0].text.rsplit("/", 1)[-1]
                if client in CLIENT_DIALECTS:
                    self.found += _sql_words(self.line, lw[1:], CLIENT_DIALECTS[client], client)

    def visitcommand(self, node: bashlex.ast.node, parts: list[bashlex.ast.node]) -> None:
        words = _unwrap(_words(node))
        if not words:
            return
        prog = words[0].text.rsplit("/", 1)[-1]
        why = _simple_destructive([w.text for w in words])
        if why:
            self.found.append((node.pos[0], node.pos[1], why))
        if prog in CLIENT_DIALECTS:
            self.found += _sql_words(self.line, words[1:], CLIENT_DIALECTS[prog], prog)
        if prog in _SHELLS and self.depth < 3:
            for k, w in enumerate(words[:-1]):
                if w.text == "-c" or (w.text.startswith("-") and w.text.endswith("c") and len(w.text) <= 4):
                    script = words[k + 1]
                    base = _inner_offset(self.line, script)
                    for i, j, inner in destructive_shell(script.text, self.depth + 1):
                        s, e = (base + i, base + j) if base is not None else (script.start, script.end)
                        self.found.append((s, e, f"{inner} (via {prog} -c)"))
                    break


def _words(node: bashlex.ast.node) -> list[Word]:
    return [Word(p.word, p.pos[0], p.pos[1]) for p in node.parts if p.kind == "word"]


def _fallback(command: str) -> list[tuple[int, int, str]]:
    """shlex with punctuation splitting: quotes respected, offsets lost (the whole line is the range)."""
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
    except ValueError:
        tokens = command.split()
    out = []
    segment: list[str] = []
    for tok in [*tokens, ";"]:
        if tok and set(tok) <= set(";&|()\n"):
            stripped = [w.text for w in _unwrap([Word(t, 0, 0) for t in segment])]
            why = _simple_destructive(stripped)
            if why:
                out.append((0, len(command), why))
            segment = []
        else:
            segment.append(tok)
    return out


def destructive_shell(command: str, depth: int = 0) -> list[tuple[int, int, str]]:
    """(start, end, why) of each destructive command in a shell command line, and of each destructive
    SQL statement it passes to a database client."""
    try:
        trees = bashlex.parse(command)
    except (bashlex.errors.ParsingError, NotImplementedError, AttributeError, IndexError, TypeError):
        return _fallback(command)
    visitor = _Visitor(command, depth)
    for tree in trees:
        visitor.visit(tree)
    return sorted(set(visitor.found))
