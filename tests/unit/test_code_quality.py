"""ruff and mypy --strict over the repository, as tests so that one pytest run says it all.

They run the tools installed beside this interpreter (the project's venv), from the repository
root, so the configuration in pyproject.toml applies.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_ruff_check() -> None:
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    # Packages and strictness come from [tool.mypy] in pyproject.toml.
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


#: Names of documents that live outside this repository (a shared design folder, reference
#: notes of the team that wrote the first version): a reader of the repository cannot follow them.
_OUTSIDE = re.compile(
    r"reference/|ARCHITECTURE(?:\.md)?|\.\./shared|shared reference|"
    r"\b(?:eventsourcing|payloads|reliability)\.md\b|\breliability T\d+|^\W*T\d+: ",
    re.MULTILINE,
)
#: A path into one of the repository's own folders, as docs and comments cite them.
_IN_REPO_PATH = re.compile(
    r"(?<![\w./-])((?:hub|projections|adapters|api|tests|ops|\.ci)/[\w./-]*\w)"
)
_TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".json", ".conf", ".snippet", ".cfg"}


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    paths = [ROOT / name for name in listed if name != "tests/unit/test_code_quality.py"]
    return [p for p in paths if p.is_file() and (p.suffix in _TEXT_SUFFIXES or p.suffix == "")]


def test_docs_and_comments_reference_only_files_in_the_repository() -> None:
    """Comments pointed at guides that are not in the repository (``reference/...``,
    ``ARCHITECTURE.md``, "reliability T14"); every path cited must exist here."""
    outside: list[str] = []
    missing: list[str] = []
    for path in _tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        name = path.relative_to(ROOT)
        outside += [f"{name}: {m.group(0)!r}" for m in _OUTSIDE.finditer(text)]
        for match in _IN_REPO_PATH.finditer(text):
            cited = match.group(1)
            if any(c in cited for c in "<*{") or (ROOT / cited).exists():
                continue
            if not (ROOT / f"{cited}.py").exists():  # a module cited without its suffix
                missing.append(f"{name}: {cited}")
    assert outside == [], outside
    assert missing == [], missing
