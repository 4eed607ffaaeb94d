"""Every code block and command of README.md runs, in order, in one scratch folder.

python blocks run as scripts (a block under `<!-- file: NAME -->` is written to NAME for a later
command to run; a block that asks for device="cuda" runs under Numba's CUDA simulator). bash
blocks run line by line; a `pip install` is checked against pyproject's extras instead of run
(this environment is the install), and `pytest -q` must be the command CI runs. text blocks show
output or files that need what CI lacks (Slurm) and are not run.
"""
import os
import pathlib
import re
import subprocess
import sys

import pytest

from cudasim_shared import PRELUDE

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(?:<!-- file: (?P<file>\S+) -->\n)?```(?P<lang>\w+)\n(?P<body>.*?)```", re.S)


def blocks():
    return [(m["lang"], m["body"], m["file"]) for m in BLOCK.finditer((ROOT / "README.md").read_text())]


def extras():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    with open(ROOT / "pyproject.toml", "rb") as f:
        return set(tomllib.load(f)["project"]["optional-dependencies"])


def check_install(command):
    """`pip install .`, `pip install -e ".[a,b]"`: the extras named must exist."""
    named = re.findall(r"\[([\w,]+)\]", command)
    unknown = {e for group in named for e in group.split(",")} - extras()
    assert not unknown, f"README installs unknown extras {unknown}: {command}"


def run(argv, cwd, env, what):
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{what}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def test_the_readme_has_no_unfilled_results():
    assert "RESULTS:" not in (ROOT / "README.md").read_text()


def test_every_block_of_the_readme_runs(tmp_path):
    pytest.importorskip("sklearn")
    env = {**os.environ, "MPLBACKEND": "Agg",
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    ci = (ROOT / ".ci" / "run").read_text()
    ran = 0
    for lang, body, filename in blocks():
        if lang == "python" and filename:
            (tmp_path / filename).write_text(body)
        elif lang == "python":
            simulated = 'device="cuda"' in body
            block_env = {**env, "NUMBA_ENABLE_CUDASIM": "1"} if simulated else env
            script = (PRELUDE if simulated else "") + body
            run([sys.executable, "-c", script], tmp_path, block_env, body)
            ran += 1
        elif lang == "bash":
            for line in body.splitlines():
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                parts = [p.strip() for p in line.split("&&")]
                for part in parts:
                    if part.startswith("pip install"):
                        check_install(part)
                    elif part == "pytest -q":
                        assert line.strip() in ci, f"CI must run the README's test command: {line}"
                    else:
                        run(["bash", "-c", part], tmp_path, env, part)
                        ran += 1
        else:
            assert lang == "text", f"README block of unknown kind {lang!r}"
    assert ran >= 10
