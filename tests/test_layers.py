"""The layer contracts in pyproject.toml ([tool.importlinter]) catch what they promise to.

`make test` runs `lint-imports` over the real tree. These tests run it over a copy of the
packages with one forbidden import added, and check that the lint then fails on that contract,
so a contract that silently matches nothing (a renamed package, a typo) cannot pass unnoticed.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("faceage_site", "jobs", "predictor", "training", "devstack")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed")


def lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The packages' Python files and pyproject.toml, nothing else."""
    for package in PACKAGES:
        for source in (ROOT / package).rglob("*.py"):
            target = tmp_path / source.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    shutil.copyfile(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_copy_passes_as_the_tree_does(tree):
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("predictor/layer_probe.py", "import training.models", "predictor never imports training"),
        (
            "predictor/vision/layer_probe.py",
            "from django.conf import settings",
            "predictor.vision imports no Django",
        ),
        (
            "faceage_site/layer_probe.py",
            "from predictor import models",
            "the site package imports no app module while it loads",
        ),
        (
            "training/layer_probe.py",
            "from devstack.redis import EmbeddedRedis",
            "the product never imports the development tooling",
        ),
        (
            "jobs/layer_probe.py",
            "from predictor.models import Prediction",
            "the job layer imports no app",
        ),
    ],
)
def test_a_forbidden_import_fails_the_lint(tree, module, line, contract):
    (tree / module).write_text(f"{line}  # the probe\n")
    result = lint(tree)
    assert result.returncode != 0
    broken = result.stdout[result.stdout.index(contract) :].splitlines()[0]
    assert "BROKEN" in broken, result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout
