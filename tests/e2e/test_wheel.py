"""The built wheel is a working hub: the Docker image installs exactly this wheel, and it
could not start when the ownership policy lived outside the packages (``ops/``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from adapters.bootstrap import DEFAULT_POLICY, load_policy
from tests.e2e.serving import ROOT

#: What the Dockerfile copies into the image before ``pip install .`` (checked below).
SOURCES = ["pyproject.toml", "README.md", "hub", "projections", "adapters", "api"]


def test_the_image_is_built_from_these_sources() -> None:
    copied = [
        part
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
        for part in line.split()[1:-1]
    ]
    assert sorted(copied) == sorted(SOURCES)


START = """
import sys
from pathlib import Path
import adapters
from adapters.bootstrap import load_policy, open_runtime
from adapters.settings import Settings
assert Path(adapters.__file__).is_relative_to(Path(sys.prefix)), adapters.__file__
policy = load_policy(None)
runtime = open_runtime(Settings(database_url=sys.argv[1], schema_name=sys.argv[2]))
try:
    print("policy", policy.version, "commands", len(runtime.hub.catalogue.all()))
finally:
    runtime.close()
"""


def test_the_built_wheel_installs_and_starts_the_hub(
    tmp_path: Path, database_url: str, pg_schema: str
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:  # the image's build context, not this checkout (no ops/, tests/)
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name)
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("concord_hub-*.whl")
    assert "adapters/ownership.yaml" in zipfile.ZipFile(wheel).namelist()

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The dependencies come from this test's environment (a plain path entry: its .pth
    # files, among them this checkout's editable install, are not processed), the hub's
    # own packages only from the wheel.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONCORD_")}
    env.pop("PYTHONPATH", None)
    concord = venv / "bin" / "concord"
    shown = subprocess.run(
        [str(concord), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert shown.returncode == 0 and "serve" in shown.stdout, shown.stderr
    started = subprocess.run(
        [str(python), "-c", START, database_url, pg_schema],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    expected = load_policy(None)
    assert started.stdout.split()[:2] == ["policy", str(expected.version)], started.stdout


def test_the_shipped_policy_is_the_only_one() -> None:
    """One source of truth: the packaged file, read through the package's resources."""
    assert Path(str(DEFAULT_POLICY)) == ROOT / "adapters" / "ownership.yaml"
    copies = [
        p.relative_to(ROOT)
        for p in ROOT.rglob("ownership*.y*ml")
        if not {".venv", ".git", "build"} & set(p.relative_to(ROOT).parts)
    ]
    assert copies == [Path("adapters/ownership.yaml")]
