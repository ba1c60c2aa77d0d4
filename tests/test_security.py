"""The security rules, checked statically (no model, no server, no network: a few seconds).

- Every server the project starts or documents binds to 127.0.0.1 unless the user asks otherwise.
- No ``torch.load`` without ``weights_only=True``; no pickle of anything a user did not create; no ``eval``.
- ``_target_`` instantiation only for classes in the project's own config groups. How that is ensured:
  nas/ never instantiates from a config (no ``hydra.utils.instantiate/call/get_class/get_method``, no
  ``importlib.import_module`` / ``__import__``); tasks, strategies and model families are chosen by name from
  registries (``nas.tasks.TASKS``, ``nas.strategies.STRATEGIES``, ``nas.models.FAMILIES``); the YAML
  under conf/ holds no ``_target_`` (one would have to name a ``nas.`` class); and every composed or loaded
  config is merged into the dataclass schemas (``nas.config.to_typed``), which refuse a ``_target_`` key.
- The Docker image runs as a non-root user: tests/test_docker.py::test_the_image_runs_as_a_user_that_is_not_root
  checks the Dockerfile's last USER (not root/0, uid created, no RUN after it); not repeated here.

Each rule is a small checker (an ``ast`` visitor or a text scan) run over the project's files, and each
checker is also run on bad and good snippets below, so a check that could never fail would show up.
Failure messages name ``file:line``.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NAS = ROOT / "nas"
CODE_DIRS = [d for d in (ROOT / "nas", ROOT / "bench", ROOT / "scripts") if d.is_dir()]

Finding = str  # "path:line: what"


def rel(path: Path | str) -> str:
    path = Path(path)
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def py_files(*dirs: Path) -> list[Path]:
    return sorted(p for d in dirs for p in d.rglob("*.py") if ".venv" not in p.parts)


@lru_cache(maxsize=None)
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# ---------------------------------------------------------------------------------------------- AST helpers


def import_aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> dotted name for every import in the module (function-level imports included)."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def qualname(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """``t.load`` -> ``torch.load`` when ``import torch as t``; a bare builtin stays as it is (``eval``)."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = qualname(node.value, aliases)
        return f"{base}.{node.attr}" if base else None
    return None


def calls(tree: ast.AST) -> Iterable[tuple[ast.Call, str]]:
    aliases = import_aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = qualname(node.func, aliases)
            if name:
                yield node, name


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def has_star_kwargs(call: ast.Call) -> bool:
    return any(k.arg is None for k in call.keywords)


def is_const(node: ast.AST | None, value) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is type(value) and node.value == value


# ---------------------------------------------------------------------------------------------- the checkers

Checker = Callable[[ast.Module, str], list[Finding]]

EVAL_LIKE = {"eval", "exec", "compile", "__import__", "builtins.eval", "builtins.exec", "builtins.compile", "builtins.__import__"}


def check_no_eval(tree: ast.Module, path: str) -> list[Finding]:
    """No eval / exec / compile / __import__ of strings (``model.eval()`` is a method, not the builtin)."""
    return [f"{path}:{c.lineno}: {name}(...) runs code from a string" for c, name in calls(tree) if name in EVAL_LIKE]


PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "marshal", "shelve", "copyreg", "joblib"}
# Allow-list: (file, module) -> reason. Empty: nas/ imports no pickle-family module. (Pickling that happens
# inside the standard library or Ray is of objects this process built itself: ProcessPoolExecutor sends the
# objective and architectures to its own spawned workers, RayEvaluator ray.put()s the objective.)
PICKLE_IMPORTS_ALLOWED: dict[tuple[str, str], str] = {}


def check_no_pickle_imports(tree: ast.Module, path: str) -> list[Finding]:
    found = []
    for node in ast.walk(tree):
        modules = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        for module in modules:
            top = module.split(".")[0]
            if top in PICKLE_MODULES and (path, top) not in PICKLE_IMPORTS_ALLOWED:
                found.append(f"{path}:{node.lineno}: imports {module} (pickle-family: unpickling runs code)")
                break
    return found


# Loaders that unpickle (or may): never on data the user did not create, so not in nas/ at all.
UNPICKLING_CALLS = {"joblib.load", "pandas.read_pickle", "mlflow.pytorch.load_model", "mlflow.pyfunc.load_model",
                    "mlflow.sklearn.load_model", "mlflow.pyfunc.load_pyfunc", "torch.serialization._load"}
# Pickle-format model *writers*, allow-listed by (file, enclosing function) -> reason.
PICKLE_WRITERS_ALLOWED = {
    ("nas/registry.py", "log_final_model"):
        "nas-final logs the user's own translation model with mlflow.pytorch (pickled module): transformers 5 has no "
        "translation pipeline, so the transformers flavour cannot save it. nas never loads it back; whoever does "
        "(mlflow.pytorch.load_model) unpickles it, so it must come from a registry they trust.",
}


def _enclosing_functions(tree: ast.Module) -> dict[ast.AST, str]:
    """node -> name of the innermost function it is in (ast.walk visits outer functions first)."""
    owner = {}
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if node is not fn:
                    owner[node] = fn.name
    return owner


def check_no_unpickling(tree: ast.Module, path: str) -> list[Finding]:
    """No pickle loaders; numpy.load never with allow_pickle; pickle-format model writers only where allow-listed."""
    found, owner = [], None
    for c, name in calls(tree):
        last = name.rsplit(".", 1)[-1]
        if name in UNPICKLING_CALLS or last == "read_pickle" or name.startswith("pickle.") or name.startswith("dill."):
            found.append(f"{path}:{c.lineno}: {name}(...) unpickles")
        elif name in ("numpy.load", "np.load"):
            allow = keyword(c, "allow_pickle")
            if (allow is not None and not is_const(allow, False)) or has_star_kwargs(c):
                found.append(f"{path}:{c.lineno}: {name}(..., allow_pickle=...) may unpickle")
        elif name.startswith("mlflow.") and last in ("log_model", "save_model"):
            fmt = keyword(c, "serialization_format")
            default_pickle = name.startswith("mlflow.pytorch.") and fmt is None and not is_const(keyword(c, "export_model"), True)
            pickled = is_const(fmt, "pickle") or default_pickle
            pickled = pickled or name.split(".")[1] in ("pyfunc", "sklearn")  # cloudpickle / pickle based flavours
            if pickled:
                owner = owner if owner is not None else _enclosing_functions(tree)
                if (path, owner.get(c)) not in PICKLE_WRITERS_ALLOWED:
                    found.append(f"{path}:{c.lineno}: {name}(...) writes a pickle-format model (loading it runs code)")
    return found


def check_torch_load(tree: ast.Module, path: str) -> list[Finding]:
    """Every torch.load passes weights_only=True as a keyword constant."""
    return [f"{path}:{c.lineno}: {name}(...) without weights_only=True" for c, name in calls(tree)
            if name in ("torch.load", "torch.serialization.load") and not is_const(keyword(c, "weights_only"), True)]


SAFE_YAML_LOADERS = {"yaml.SafeLoader", "yaml.CSafeLoader", "yaml.BaseLoader", "yaml.CBaseLoader"}
UNSAFE_YAML_CALLS = {"yaml.unsafe_load", "yaml.unsafe_load_all", "yaml.full_load", "yaml.full_load_all"}


def check_yaml_load(tree: ast.Module, path: str) -> list[Finding]:
    """yaml.load / load_all only with a safe loader; never unsafe_load / full_load."""
    aliases, found = import_aliases(tree), []
    for c, name in calls(tree):
        if name in UNSAFE_YAML_CALLS:
            found.append(f"{path}:{c.lineno}: {name}(...) constructs arbitrary objects")
        elif name in ("yaml.load", "yaml.load_all"):
            loader = keyword(c, "Loader") or (c.args[1] if len(c.args) > 1 else None)
            if loader is None or qualname(loader, aliases) not in SAFE_YAML_LOADERS:
                found.append(f"{path}:{c.lineno}: {name}(...) without Loader=yaml.SafeLoader")
    return found


SHELL_CALLS = {"os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput", "asyncio.create_subprocess_shell"}
SUBPROCESS_CALLS = {f"subprocess.{f}" for f in ("run", "call", "check_call", "check_output", "Popen")}


def check_no_shell(tree: ast.Module, path: str) -> list[Finding]:
    """No subprocess with shell=True (or anything but a literal False), no os.system / os.popen."""
    found = []
    for c, name in calls(tree):
        if name in SHELL_CALLS:
            found.append(f"{path}:{c.lineno}: {name}(...) runs a shell")
        elif name in SUBPROCESS_CALLS:
            shell = keyword(c, "shell")
            if (shell is not None and not is_const(shell, False)) or has_star_kwargs(c):
                found.append(f"{path}:{c.lineno}: {name}(..., shell=...) may run a shell")
    return found


DYNAMIC_INSTANTIATION = {f"hydra.utils.{f}" for f in ("instantiate", "call", "get_class", "get_method", "get_object", "_locate")}
DYNAMIC_INSTANTIATION |= {"hydra._internal.utils._locate", "hydra._internal.instantiate._instantiate2.instantiate",
                          "importlib.import_module", "importlib.__import__", "__import__", "builtins.__import__",
                          "pydoc.locate"}


def check_no_dynamic_instantiation(tree: ast.Module, path: str) -> list[Finding]:
    """Nothing in nas/ turns a string from a config into a class or function."""
    aliases, found = import_aliases(tree), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Name, ast.Attribute)) and qualname(node, aliases) in DYNAMIC_INSTANTIATION:
            found.add(f"{path}:{node.lineno}: {qualname(node, aliases)} (instantiates from a string)")
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                if f"{node.module}.{a.name}" in DYNAMIC_INSTANTIATION:
                    found.add(f"{path}:{node.lineno}: imports {node.module}.{a.name} (instantiates from a string)")
    return sorted(found)


LOOPBACK = "127.0.0.1"
RAY_SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray's single-machine mode, every port on 127.0.0.1
WILDCARD_ADDRESSES = {"0.0.0.0", "::", "[::]"}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                ids.add(id(first.value))
    return ids


def check_servers_bind_loopback(tree: ast.Module, path: str) -> list[Finding]:
    """Servers started from code listen on 127.0.0.1: no wildcard address in code; ray.init without a cluster
    address pins the node to 127.0.0.1 with no dashboard (or a loopback one); an argv list that starts
    ``mlflow server|ui`` or ``ray start`` passes the same check as a documented command."""
    found, docs = [], _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if node.value in WILDCARD_ADDRESSES or node.value.startswith("0.0.0.0:"):
                found.append(f"{path}:{node.lineno}: binds the wildcard address {node.value!r}")
        elif isinstance(node, (ast.List, ast.Tuple)) and any(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            # an argv: constants as they are (the program by its file name), anything computed as ARG
            argv = [(Path(e.value).name if i == 0 else e.value) if isinstance(e, ast.Constant) and isinstance(e.value, str) else "ARG"
                    for i, e in enumerate(node.elts)]
            for kind, statement in server_commands(shlex.join(argv)):
                problem = command_problem(kind, statement)
                if problem:
                    found.append(f"{path}:{node.lineno}: {problem}: {statement}")
    single_machine = any(  # os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0") or os.environ[...] = "0"
        (name in ("os.environ.setdefault", "os.putenv") and len(c.args) == 2 and is_const(c.args[0], RAY_SINGLE_MACHINE)
         and is_const(c.args[1], "0")) for c, name in calls(tree)) or any(
        isinstance(n, ast.Assign) and is_const(n.value, "0") and any(
            isinstance(t, ast.Subscript) and is_const(t.slice, RAY_SINGLE_MACHINE) for t in n.targets) for n in ast.walk(tree))
    for c, name in calls(tree):
        if name == "ray.init" and keyword(c, "address") is None and not c.args:  # None: Ray starts here
            if not single_machine:
                found.append(f"{path}:{c.lineno}: ray.init starts Ray here without {RAY_SINGLE_MACHINE}=0 in the environment "
                             f"(without it Ray listens on every interface)")
            if not is_const(keyword(c, "_node_ip_address"), LOOPBACK):
                found.append(f"{path}:{c.lineno}: ray.init starts Ray here without _node_ip_address='127.0.0.1'")
            if not (is_const(keyword(c, "include_dashboard"), False) or is_const(keyword(c, "dashboard_host"), LOOPBACK)):
                found.append(f"{path}:{c.lineno}: ray.init without include_dashboard=False or dashboard_host='127.0.0.1'")
    return found


# ---------------------------------------------------------------------------------------------- documented server commands

SERVER_COMMAND = re.compile(r"\bmlflow\s+(?P<mlflow>server|ui)\b|\bray\s+start\b|--entrypoint[=\s]+mlflow\b")
SHELL_SEPARATOR = re.compile(r"\s(?:&&|\|\||;|\||&)\s")


def _option(statement: str, *names: str) -> list[str]:
    pattern = "|".join(re.escape(n) for n in names)
    return re.findall(rf"(?:^|\s)(?:{pattern})(?:=|\s+)(\S+)", statement)


def server_commands(unit: str) -> list[tuple[str, str]]:
    """(kind, statement) for each server command in one logical shell line or code span: the statement is the
    part between shell separators that holds it, without a trailing comment that comes after it."""
    out = []
    for m in SERVER_COMMAND.finditer(unit):
        kind = "ray" if m.group(0).startswith("ray") else "mlflow"
        start = max((s.end() for s in SHELL_SEPARATOR.finditer(unit, 0, m.start())), default=0)
        comment = unit.find(" #", m.end())
        end = min([s.start() for s in SHELL_SEPARATOR.finditer(unit, m.end())] + [comment if comment >= 0 else len(unit), len(unit)])
        statement = unit[start:end].strip()
        if m.group(0).startswith("--entrypoint") and not re.search(r"\s(server|ui)\b", unit[m.end():end]):
            continue  # mlflow as the entrypoint, but not its server
        out.append((kind, statement))
    return out


def command_problem(kind: str, statement: str) -> str | None:
    """None when the command binds 127.0.0.1 explicitly (or runs in a container whose ports are published on
    the host's 127.0.0.1 only); else what is wrong."""
    if kind == "ray":
        # Checked with Ray 2.60 on Linux: `ray start --head --node-ip-address=127.0.0.1` alone still listens on
        # every interface (GCS and raylet on *, the runtime-env agent on the machine's address); with
        # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 as well (Ray's single-machine mode, as nas.evaluators uses) every
        # port is on 127.0.0.1.
        hosts = _option(statement, "--node-ip-address")
        dashboard = _option(statement, "--dashboard-host")
        if hosts != [LOOPBACK] or not re.search(rf"\b{RAY_SINGLE_MACHINE}=0\s", statement):
            return (f"ray start without {RAY_SINGLE_MACHINE}=0 and --node-ip-address=127.0.0.1 "
                    f"(it listens on every interface; a Ray node has no authentication)")
        if dashboard and dashboard != [LOOPBACK]:
            return f"ray start with --dashboard-host {dashboard[0]}"
        return None
    hosts = _option(statement, "--host", "-h")
    if hosts == [LOOPBACK]:
        return None
    if re.search(r"\bdocker\s+(?:container\s+)?run\b", statement):
        published = _option(statement, "-p", "--publish")
        if published and all(p.strip("'\"").startswith(f"{LOOPBACK}:") for p in published):
            return None  # 0.0.0.0 inside the container is how a port gets published; the host side is loopback
        return f"docker run publishes {published or 'nothing'} (publish as -p 127.0.0.1:PORT:PORT)"
    return f"mlflow server/ui with --host {hosts[0]}" if hosts else "mlflow server/ui without --host 127.0.0.1"


def _logical_lines(lines: list[tuple[int, str]]) -> list[tuple[int, int, str]]:
    """Backslash continuations joined: (first line, last line, text)."""
    out, current, first, last = [], "", None, None
    for number, line in lines:
        first = number if first is None else first
        last = number
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        out.append((first, last, current + line))
        current, first = "", None
    if current:
        out.append((first, last, current))
    return out


def _code_spans(text: str) -> list[tuple[int, str]]:
    """(offset, content) of each `inline code` span."""
    return [(m.start(1), m.group(1)) for m in re.finditer(r"`([^`]+)`", text)]


def documented_units(text: str, markdown: bool) -> list[tuple[int, int, str | None, str]]:
    """(line, section heading, shell text) to scan: in Markdown, each logical line of a fenced block and each
    inline code span of prose (which may wrap across lines); elsewhere each logical line, narrowed to the
    code span it sits in, when it has backticks (a command quoted in a comment). Each as
    (first line, last line, section heading, text)."""
    units: list[tuple[int, int, str | None, str]] = []
    lines = list(enumerate(text.splitlines(), start=1))
    if not markdown:
        for first, last, line in _logical_lines(lines):
            spans = _code_spans(line)
            units += [(first, last, None, s) for _, s in spans] if spans else [(first, last, None, line)]
        return units
    section, fence, block, paragraph = None, None, [], []

    def flush_paragraph():
        if paragraph:
            joined, starts = "", []
            for number, line in paragraph:
                starts.append((len(joined), number))
                joined += line + " "
            for offset, span in _code_spans(joined):
                first = max(n for o, n in starts if o <= offset)
                last = max(n for o, n in starts if o <= offset + len(span))
                units.append((first, last, section, span))
            paragraph.clear()

    for number, line in lines:
        stripped = line.strip()
        if fence:
            if stripped.startswith(fence):
                units.extend((first, last, section, s) for first, last, s in _logical_lines(block))
                fence, block = None, []
            else:
                block.append((number, line))
        elif stripped.startswith(("```", "~~~")):
            flush_paragraph()
            fence = stripped[:3]
        elif stripped.startswith("#"):
            flush_paragraph()
            section = stripped.lstrip("#").strip()
        elif not stripped:
            flush_paragraph()
        else:
            paragraph.append((number, line))
    flush_paragraph()
    return units


# Sections that may show a server reachable from other machines, each with the words that must stay in it
# (who can reach it, authentication, allowed hosts): (file, section heading) -> required phrases.
# "A tracking server for a team" shows `mlflow server --host 127.0.0.1` and names `--host 0.0.0.0` only in
# prose that explains what it exposes (no users without --app-name basic-auth, --allowed-hosts).
EXPOSURE_EXPLAINED: dict[tuple[str, str], tuple[str, ...]] = {
    ("README.md", "A tracking server for a team"): ("--host 127.0.0.1", "basic-auth", "--allowed-hosts"),
}


def section_texts(text: str) -> dict[str, str]:
    sections, current, fence = {}, None, False
    for line in text.splitlines():
        if line.strip().startswith(("```", "~~~")):
            fence = not fence
        elif not fence and line.startswith("#"):
            current = line.lstrip("#").strip()
            continue
        sections[current] = sections.get(current, "") + line + "\n"
    return sections


def check_documented_servers(text: str, path: str, explained: dict[tuple[str, str], tuple[str, ...]] = EXPOSURE_EXPLAINED) -> list[Finding]:
    """Every documented `mlflow server`, `mlflow ui`, `ray start` binds 127.0.0.1, unless its README section is
    one of ``explained`` and still holds the words that explain the exposure; in Markdown, every other
    0.0.0.0 sits in such a section too."""
    markdown = path.endswith(".md")
    sections = section_texts(text) if markdown else {}

    def explained_here(section: str | None) -> str | None:
        """None when the section explains the exposure; else why not."""
        phrases = explained.get((path, section))
        if phrases is None:
            return "not in a section that explains the exposure"
        missing = [p for p in phrases if p not in sections.get(section, "")]
        return f"section '{section}' no longer says {missing}" if missing else None

    found, checked_lines = [], set()
    for number, last, section, unit in documented_units(text, markdown):
        for kind, statement in server_commands(unit):
            checked_lines.update(range(number, last + 1))
            problem = command_problem(kind, statement)
            why = explained_here(section) if problem and markdown else None
            if problem and (why or not markdown):
                found.append(f"{path}:{number}: {problem}{f' ({why})' if why else ''}: {statement[:160]}")
    if markdown:
        section = None
        fence = False
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip().startswith(("```", "~~~")):
                fence = not fence
            elif not fence and line.startswith("#"):
                section = line.lstrip("#").strip()
            if "0.0.0.0" in line and number not in checked_lines:
                why = explained_here(section)
                if why:
                    found.append(f"{path}:{number}: 0.0.0.0 ({why}): {line.strip()[:160]}")
    return found


def doc_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "Dockerfile", ROOT / "Makefile", *sorted((ROOT / "conf").rglob("*.yaml")),
             *sorted((ROOT / "data").glob("*.md")), *py_files(*CODE_DIRS)]
    return [f for f in files if f.is_file()]


# ---------------------------------------------------------------------------------------------- _target_ in conf/


def yaml_targets(text: str) -> list[tuple[int, str]]:
    """(line, value) of every `_target_` key in a YAML document (stream)."""
    out = []

    def walk(node):
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == "_target_":
                    out.append((key.start_mark.line + 1, value.value if isinstance(value, yaml.ScalarNode) else str(value)))
                walk(value)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item)

    for document in yaml.compose_all(text, Loader=yaml.SafeLoader):
        walk(document)
    return out


def check_conf_targets(text: str, path: str) -> list[Finding]:
    """No `_target_` in conf/; should one appear, it must name a class of the project (``nas.``)."""
    return [f"{path}:{line}: _target_: {value} (only nas.* classes may be instantiated)"
            for line, value in yaml_targets(text) if not value.startswith("nas.")]


# ---------------------------------------------------------------------------------------------- the project's files

AST_RULES: list[tuple[Checker, list[Path]]] = [
    (check_no_eval, CODE_DIRS),
    (check_no_pickle_imports, [NAS]),
    (check_no_unpickling, CODE_DIRS),
    (check_torch_load, CODE_DIRS),
    (check_yaml_load, CODE_DIRS),
    (check_no_shell, CODE_DIRS),
    (check_no_dynamic_instantiation, [NAS]),
    (check_servers_bind_loopback, CODE_DIRS),
]


def run_checker(checker: Checker, dirs: list[Path]) -> list[Finding]:
    files = py_files(*dirs)
    assert files, f"no .py files under {[rel(d) for d in dirs]}"
    return [f for path in files for f in checker(parse(path), rel(path))]


@pytest.mark.parametrize("checker, dirs", AST_RULES, ids=[c.__name__ for c, _ in AST_RULES])
def test_code_follows_the_rule(checker, dirs):
    findings = run_checker(checker, dirs)
    assert not findings, f"{checker.__doc__.strip().splitlines()[0]}\n" + "\n".join(findings)


def test_the_scan_sees_the_calls_it_judges():
    # The checkers resolve names as the code imports them: the known safe calls of nas/ are found, so a rule that
    # passes does so because they are safe, not because the scan missed them.
    seen = {name for path in py_files(NAS) for _, name in calls(parse(path))}
    assert {"torch.load", "ray.init", "mlflow.pytorch.log_model", "numpy.load"} <= seen, seen
    assert any(n.startswith("subprocess.") for path in py_files(*CODE_DIRS) for _, n in calls(parse(path)))


def test_pickle_writer_allow_list_is_current():
    # An allow-list entry whose call is gone must go too, or it would silently cover a new one.
    for (path, function), _reason in PICKLE_WRITERS_ALLOWED.items():
        tree = parse(ROOT / path)
        owner = _enclosing_functions(tree)
        assert any(owner.get(c) == function and n.startswith("mlflow.") and n.endswith(("log_model", "save_model"))
                   for c, n in calls(tree)), f"{path}: no mlflow model writer in {function}() any more: drop its allow-list entry"


def test_no_target_outside_the_project_in_conf():
    files = sorted((ROOT / "conf").rglob("*.yaml"))
    assert files
    findings = [f for path in files for f in check_conf_targets(path.read_text(encoding="utf-8"), rel(path))]
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize("override", ["+task._target_=os.system", "+_target_=builtins.eval"])
def test_the_config_schema_refuses_a_target(override):
    # A `_target_` given on the command line (or in a saved config that resume / nas-final loads) never reaches
    # anything that could instantiate it: the typed config (what nas/ reads) refuses the key.
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError

    from nas.config import CONF_DIR, register_configs, to_typed

    register_configs()  # conftest does it too; idempotent
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[override])
    with pytest.raises(ConfigKeyError, match="_target_"):
        to_typed(cfg)
    with pytest.raises(ConfigKeyError, match="_target_"):  # the same config as a saved .hydra/config.yaml
        to_typed(OmegaConf.create(OmegaConf.to_yaml(cfg)))


# The documented commands that break the rule now; each entry is an xfail(strict=True): fix the command (or, for a
# deliberate multi-machine server, explain it in its README section and list that section in EXPOSURE_EXPLAINED),
# then drop the entry.
KNOWN_DOC_VIOLATIONS: dict[str, str] = {}  # file -> why it is allowed for now (xfail, strict)


def _doc_params():
    params = []
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        if SERVER_COMMAND.search(text) or (path.suffix == ".md" and "0.0.0.0" in text):
            reason = KNOWN_DOC_VIOLATIONS.get(rel(path))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(path, id=rel(path), marks=marks))
    return params


@pytest.mark.parametrize("path", _doc_params())
def test_documented_servers_bind_loopback(path):
    findings = check_documented_servers(path.read_text(encoding="utf-8"), rel(path))
    assert not findings, "\n".join(findings)


def test_the_doc_scan_finds_the_readme_commands():
    # The scan reads what the README shows: the UI, the team server (a continued line), the image's UI
    # (an inline span wrapped over two lines) and the Ray head.
    found = [(kind, re.sub(r"^(\w+=\S*\s+)+", "", s))  # the command after its environment settings (VAR=value ...)
             for _, _, _, unit in documented_units((ROOT / "README.md").read_text(), markdown=True) for kind, s in server_commands(unit)]
    texts = " | ".join(s for _, s in found)
    assert sum(s.startswith("mlflow server") for _, s in found) >= 1, texts
    assert any(s.startswith(".venv/bin/mlflow ui") for _, s in found), texts
    assert any(s.startswith("docker run") and "--entrypoint mlflow" in s for _, s in found), texts
    assert {p for (f, _s), p in EXPOSURE_EXPLAINED.items() if f == "README.md"}  # the team section is listed


def test_known_doc_violations_name_files_that_exist():
    for path in KNOWN_DOC_VIOLATIONS:
        assert (ROOT / path).is_file(), f"{path}: gone; drop it from KNOWN_DOC_VIOLATIONS"


# ---------------------------------------------------------------------------------------------- the checkers can fail

BAD = [
    (check_no_eval, "x = eval(s)"),
    (check_no_eval, "exec(code)"),
    (check_no_eval, "import builtins\nbuiltins.eval('1')"),
    (check_no_eval, "f = compile(src, 'f', 'exec')"),
    (check_no_pickle_imports, "import pickle"),
    (check_no_pickle_imports, "from cloudpickle import loads"),
    (check_no_pickle_imports, "import dill as d"),
    (check_no_pickle_imports, "import marshal, os"),
    (check_no_pickle_imports, "import shelve"),
    (check_no_pickle_imports, "from joblib import load"),
    (check_no_unpickling, "import joblib\njoblib.load(p)"),
    (check_no_unpickling, "import pandas as pd\npd.read_pickle(p)"),
    (check_no_unpickling, "import numpy as np\nnp.load(p, allow_pickle=True)"),
    (check_no_unpickling, "import mlflow\nmlflow.pytorch.load_model(uri)"),
    (check_no_unpickling, "import mlflow\ndef f():\n    mlflow.pytorch.log_model(m, name='m')"),
    (check_no_unpickling, "import mlflow\ndef f():\n    mlflow.pytorch.log_model(m, name='m', serialization_format='pickle')"),
    (check_no_unpickling, "import mlflow\ndef f():\n    mlflow.pyfunc.log_model(name='m', python_model=M())"),
    (check_torch_load, "import torch\ntorch.load(p)"),
    (check_torch_load, "import torch\ntorch.load(p, weights_only=False)"),
    (check_torch_load, "import torch\ntorch.load(p, weights_only=flag)"),
    (check_torch_load, "import torch as t\nt.load(p, map_location='cpu')"),
    (check_torch_load, "from torch import load\nload(p)"),
    (check_torch_load, "import torch\ntorch.load(p, **kw)"),
    (check_yaml_load, "import yaml\nyaml.load(s)"),
    (check_yaml_load, "import yaml\nyaml.load(s, Loader=yaml.Loader)"),
    (check_yaml_load, "import yaml\nyaml.load(s, yaml.FullLoader)"),
    (check_yaml_load, "import yaml\nyaml.unsafe_load(s)"),
    (check_yaml_load, "import yaml\nyaml.full_load(s)"),
    (check_no_shell, "import subprocess\nsubprocess.run(cmd, shell=True)"),
    (check_no_shell, "import subprocess as sp\nsp.Popen(cmd, shell=flag)"),
    (check_no_shell, "from subprocess import check_output\ncheck_output('ls', shell=True)"),
    (check_no_shell, "import os\nos.system('ls')"),
    (check_no_shell, "import subprocess\nsubprocess.getoutput('ls')"),
    (check_no_dynamic_instantiation, "from hydra.utils import instantiate\ninstantiate(cfg)"),
    (check_no_dynamic_instantiation, "import hydra\nhydra.utils.instantiate(cfg.model)"),
    (check_no_dynamic_instantiation, "import hydra.utils\nhydra.utils.call(cfg.fn)"),
    (check_no_dynamic_instantiation, "from hydra.utils import get_class\nget_class(name)"),
    (check_no_dynamic_instantiation, "import importlib\nimportlib.import_module(name)"),
    (check_no_dynamic_instantiation, "m = __import__(name)"),
    (check_servers_bind_loopback, "server.bind(('0.0.0.0', 8080))"),
    (check_servers_bind_loopback, "app.run(host='0.0.0.0')"),
    (check_servers_bind_loopback, "import ray\nray.init(num_cpus=2)"),
    (check_servers_bind_loopback, "import ray\nray.init(num_cpus=2, include_dashboard=False, _node_ip_address='127.0.0.1')"),
    (check_servers_bind_loopback, "import ray\nray.init(_node_ip_address='127.0.0.1')"),
    (check_servers_bind_loopback, "cmd = ['mlflow', 'server', '--port', '5000']"),
    (check_servers_bind_loopback, "cmd = ['/venv/bin/mlflow', 'ui', '--host', '0.0.0.0']"),
    (check_servers_bind_loopback, "cmd = ['ray', 'start', '--head']"),
]

GOOD = [
    (check_no_eval, "model.eval()\npattern = re.compile('x')\nself.eval_steps = 3"),
    (check_no_pickle_imports, "import json\nfrom concurrent.futures import ProcessPoolExecutor"),
    (check_no_unpickling, "import numpy as np\nwith np.load(p) as a: pass\nnp.load(p, allow_pickle=False)"),
    (check_no_unpickling, "import mlflow\nmlflow.transformers.log_model(m, name='m')\n"
                          "mlflow.pytorch.log_model(m, name='m', serialization_format='pt2')"),
    (check_torch_load, "import torch\ntorch.load(p, map_location='cpu', weights_only=True)"),
    (check_torch_load, "from torch import load\nload(p, weights_only=True)\ntorch.save(x, p)"),
    (check_yaml_load, "import yaml\nyaml.safe_load(s)\nyaml.load(s, Loader=yaml.SafeLoader)\nyaml.load(s, yaml.CSafeLoader)"),
    (check_yaml_load, "from omegaconf import OmegaConf\nOmegaConf.load(p)"),
    (check_no_shell, "import subprocess\nsubprocess.run(['ls', '-l'], check=True)\nsubprocess.run(cmd, shell=False)"),
    (check_no_dynamic_instantiation, "import hydra\n@hydra.main(version_base='1.3')\ndef main(cfg): pass\n"
                                     "from importlib.metadata import version"),
    (check_servers_bind_loopback, "import os, ray\nos.environ.setdefault('RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER', '0')\n"
                                  "ray.init(num_cpus=2, include_dashboard=False, _node_ip_address='127.0.0.1')\n"
                                  "ray.init(address=address)\ns.bind(('127.0.0.1', 0))"),
    (check_servers_bind_loopback, "import os, ray\nos.environ['RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER'] = '0'\n"
                                  "ray.init(include_dashboard=False, _node_ip_address='127.0.0.1')"),
    (check_servers_bind_loopback, "def f():\n    '''Listens on 0.0.0.0? No: on ::1.'''\n"
                                  "cmd = ['mlflow', 'server', '--host', '127.0.0.1', '--port', '5000']"),
]


def _id(case):
    checker, source = case
    return f"{checker.__name__}:{source.splitlines()[-1][:40]}"


@pytest.mark.parametrize("checker, source", BAD, ids=[_id(c) for c in BAD])
def test_checker_flags_a_bad_snippet(checker, source):
    findings = checker(ast.parse(source), "snippet.py")
    assert findings, f"{checker.__name__} missed:\n{source}"
    assert all(re.match(r"snippet\.py:\d+: ", f) for f in findings), findings


@pytest.mark.parametrize("checker, source", GOOD, ids=[_id(c) for c in GOOD])
def test_checker_passes_a_good_snippet(checker, source):
    assert checker(ast.parse(source), "snippet.py") == []


def test_pickle_writer_allow_list_needs_the_right_function():
    source = "import mlflow\ndef log_final_model():\n    mlflow.pytorch.log_model(m, name='m', serialization_format='pickle')\n"
    assert check_no_unpickling(ast.parse(source), "nas/registry.py") == []
    assert check_no_unpickling(ast.parse(source.replace("log_final_model", "other")), "nas/registry.py")
    assert check_no_unpickling(ast.parse(source), "nas/other.py")


DOC_BAD = [
    ("README.md", "## Run\n\n```bash\nmlflow ui --backend-store-uri sqlite:///x.db\n```\n"),
    ("README.md", "## Run\n\n```bash\nmlflow server \\\n  --backend-store-uri x \\\n  --host 0.0.0.0 --port 5000\n```\n"),
    ("README.md", "## Run\n\nStart it with `mlflow server\n--host 0.0.0.0` and go.\n"),
    ("README.md", "## Run\n\n```bash\nnas parallel.ray_address=auto   # (ray start --head first)\n```\n"),
    ("README.md", "## Run\n\n`docker run -p 5000:5000 --entrypoint mlflow nas ui --host 0.0.0.0`\n"),
    ("README.md", "## Run\n\nBind it with `--host 0.0.0.0` for everyone.\n"),
    ("README.md", "## Team\n\nUse `--host 0.0.0.0`; no basic-auth here.\n"),  # listed, but the phrases are gone
    ("conf/x.yaml", "# Browse it with:\n#   mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db\nuri: x\n"),
    ("Makefile", "ui:\n\t$(BIN)/mlflow ui --host 0.0.0.0\n"),
    ("Dockerfile", 'CMD ["sh", "-c", "ray start --head --block"]\n'),
    ("README.md", "## Run\n\n```bash\nray start --head --node-ip-address=127.0.0.1\n```\n"),  # still on every interface
]

DOC_GOOD = [
    ("README.md", "## Run\n\n```bash\n.venv/bin/mlflow ui --backend-store-uri sqlite:///x.db --host 127.0.0.1 --port 5000\n```\n"),
    ("README.md", "## Run\n\n```bash\nmlflow server \\\n  --backend-store-uri x \\\n  --host 127.0.0.1 --port 5000\n```\n"),
    ("README.md", "## Run\n\n`docker run --rm -p 127.0.0.1:5000:5000 -v x:/y --entrypoint mlflow nas ui\n"
                  "--backend-store-uri sqlite:///outputs/mlflow.db --host 0.0.0.0 --port 5000`, then open it.\n"),
    ("README.md", "## Run\n\n```bash\nRAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start --head --node-ip-address=127.0.0.1 "
                  "--include-dashboard=false\n```\n"),
    ("README.md", "## Team\n\n- `--host 127.0.0.1` (the default). Use `--host 0.0.0.0` only with `--app-name basic-auth` "
                  "and `--allowed-hosts`.\n\n```bash\nmlflow server --host 0.0.0.0 --app-name basic-auth\n```\n"),
    ("conf/x.yaml", "# A server (e.g. `mlflow server --host 127.0.0.1 --port 5000`).\nuri: http://127.0.0.1:5000\n"),
    ("README.md", "## Run\n\nMLflow server and Ray starts here; `nas parallel.backend=ray`.\n"),
]
DOC_EXPLAINED = {("README.md", "Team"): ("--host 127.0.0.1", "basic-auth", "--allowed-hosts")}


@pytest.mark.parametrize("path, text", DOC_BAD, ids=[f"{p}:{t.splitlines()[-1][:40]}" for p, t in DOC_BAD])
def test_doc_check_flags_a_bad_command(path, text):
    findings = check_documented_servers(text, path, DOC_EXPLAINED)
    assert findings, f"missed:\n{text}"
    assert all(re.match(rf"{re.escape(path)}:\d+: ", f) for f in findings), findings


@pytest.mark.parametrize("path, text", DOC_GOOD, ids=[f"{p}:{t.splitlines()[-1][:40]}" for p, t in DOC_GOOD])
def test_doc_check_passes_a_good_command(path, text):
    assert check_documented_servers(text, path, DOC_EXPLAINED) == []


def test_doc_check_names_the_line_of_a_continued_command():
    text = "# Title\n\n## Run\n\ntext\n\n```bash\nmlflow server \\\n  --host 0.0.0.0\n```\n"
    assert check_documented_servers(text, "README.md", {})[0].startswith("README.md:8: ")


@pytest.mark.parametrize("text, flagged", [
    ("defaults:\n  - base\nmodel:\n  _target_: os.system\n", ["conf/x.yaml:4: _target_: os.system"]),
    ("a:\n  - b:\n      _target_: subprocess.run\n", ["conf/x.yaml:3: _target_: subprocess.run"]),
    ("model:\n  _target_: nas.models.Thing\n", []),
    ("name: text_classification\ntarget_column: label\n", []),
])
def test_conf_target_check(text, flagged):
    assert [f.split(" (")[0] for f in check_conf_targets(text, "conf/x.yaml")] == flagged


def test_a_saved_config_read_back_may_not_use_resolvers_that_read_this_machine(tmp_path):
    # resume and nas-final read a search's config back, nas-final possibly from a shared tracking server: a tampered
    # ${oc.env:...} would copy this machine's environment into params logged there.
    from nas.config import saved_config

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text("tracking:\n  run_name: ${oc.env:HOME}\n")
    with pytest.raises(ValueError, match=r"resolver \['oc.env'\] in '\$\{oc.env:HOME\}'"):
        saved_config(str(tmp_path))
