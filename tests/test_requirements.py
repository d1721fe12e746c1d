"""requirements.txt is what a deployment installs, requirements-dev.txt what only tests, lint and
benchmarks add: both pinned, apart, and covering every import (the deploy smoke in .ci/run runs
from a venv made from requirements.txt alone)."""
from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "requirements.txt"
DEV = ROOT / "requirements-dev.txt"
INCLUDE_RUNTIME = "-r requirements.txt"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
PIN = re.compile(NAME.pattern + r"(?:\[[A-Za-z0-9._,-]+\])?==[A-Za-z0-9.+!-]+")
TEST_TOOLS = {"pytest", "hypothesis", "aiosmtpd", "ruff", "import-linter", "psutil", "playwright"}

# What runs on a deployment: the app, its entry points, the migrations `flask db upgrade` runs,
# and deploy/smoke.py (run by .ci/run with the deployment venv's python).
RUNTIME_CODE = [ROOT / "stocklink", ROOT / "app.py", ROOT / "wsgi.py", ROOT / "migrations", ROOT / "deploy"]
DEV_CODE = [ROOT / "tests", ROOT / "bench"]


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lines(path: Path) -> list[str]:
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def pinned(path: Path) -> list[str]:
    """The canonical names of the packages a requirements file pins itself (not through -r)."""
    return [canonical(NAME.match(line).group()) for line in lines(path) if line != INCLUDE_RUNTIME]


def local_modules(file: Path) -> set[str]:
    """Names that import the project's own code: top-level packages and modules of the
    repository, and scripts beside the importing file (bench/ scripts import each other)."""
    names = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    names |= {p.stem for p in ROOT.glob("*.py")} | {p.stem for p in file.parent.glob("*.py")}
    return names


def third_party_imports(roots: list[Path]) -> dict[str, set[str]]:
    """{top-level module: files importing it} for every import that is neither the standard
    library nor the project's own, walked from the syntax tree."""
    found: dict[str, set[str]] = {}
    files = [f for root in roots for f in ([root] if root.is_file() else sorted(root.rglob("*.py")))]
    assert files, roots
    for file in files:
        local = local_modules(file)
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, set()).add(str(file.relative_to(ROOT)))
    return found


def uncovered(imports: dict[str, set[str]], allowed: set[str]) -> dict[str, str]:
    """The imports no package in `allowed` provides, with the distributions that do provide
    them here (none: not installed by either file)."""
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for module, files in sorted(imports.items()):
        dists = {canonical(d) for d in providers.get(module, [])}
        if not dists & allowed:
            missing[module] = f"from {sorted(dists) or 'no installed package'}, imported by {sorted(files)[:3]}"
    return missing


def test_every_line_of_both_files_is_pinned_with_double_equals():
    for path in (RUNTIME, DEV):
        for line in lines(path):
            if path == DEV and line == INCLUDE_RUNTIME:
                continue
            assert PIN.fullmatch(line), f"{path.name}: {line!r} is not one package pinned with =="


def test_the_dev_file_starts_by_including_the_runtime_file():
    dev = lines(DEV)
    assert dev[0] == INCLUDE_RUNTIME
    assert [line for line in dev if line.startswith("-")] == [INCLUDE_RUNTIME]


def test_no_package_is_pinned_twice_or_in_both_files():
    runtime, dev = pinned(RUNTIME), pinned(DEV)
    assert len(runtime) == len(set(runtime)) and len(dev) == len(set(dev))
    assert set(runtime) & set(dev) == set()


def test_the_test_and_lint_tools_are_in_the_dev_file_only():
    assert TEST_TOOLS <= set(pinned(DEV))
    assert TEST_TOOLS & set(pinned(RUNTIME)) == set()


def test_every_third_party_import_of_the_deployed_code_is_in_requirements_txt():
    imports = third_party_imports(RUNTIME_CODE)
    assert {"flask", "sqlalchemy", "rq", "click", "alembic", "requests"} <= set(imports)  # the walk saw them
    assert uncovered(imports, set(pinned(RUNTIME))) == {}


def test_every_third_party_import_of_the_tests_and_benchmarks_is_in_one_of_the_files():
    imports = third_party_imports(DEV_CODE)
    assert {"pytest", "hypothesis", "aiosmtpd", "psutil", "playwright"} <= set(imports)  # the walk saw them
    assert uncovered(imports, set(pinned(RUNTIME)) | set(pinned(DEV))) == {}


def test_the_readme_deploy_recipe_installs_requirements_txt_only():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    deploy = readme.split("## Deploying for a client", 1)[1].split("\n## ", 1)[0]
    installed = re.findall(r"pip install -r (\S+)", deploy)
    assert installed and set(installed) == {"requirements.txt"}


def make_dry_run(directory: Path, target: str) -> str:
    """What `make -n target` would run in `directory` (prints the recipes, runs none of them)."""
    # Not as a sub-make of `make test`: that would print "Entering directory" lines and pass its flags on.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    result = subprocess.run(["make", "--no-print-directory", "-n", target, "PY=python3.11"], cwd=directory,
                            capture_output=True, text=True, timeout=30, check=True, env=env)
    return result.stdout


def checkout_copy(tmp_path: Path) -> Path:
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def test_make_run_installs_requirements_txt_and_not_the_dev_file(tmp_path):
    fresh = checkout_copy(tmp_path)
    plan = make_dry_run(fresh, "run")
    assert "pip install --quiet --disable-pip-version-check -r requirements.txt" in plan
    assert "requirements-dev" not in plan
    assert plan.rstrip().endswith(".venv/bin/python -m stocklink.runner")
    assert not (fresh / ".venv").exists()  # a dry run: nothing made, nothing installed


def test_make_test_lint_and_bench_install_both_files(tmp_path):
    fresh = checkout_copy(tmp_path)
    for target, command in (("test", ".venv/bin/pytest"), ("lint", ".venv/bin/ruff check ."),
                            ("bench", ".venv/bin/python bench/propagation.py")):
        plan = make_dry_run(fresh, target)
        runtime, dev = plan.find("-r requirements.txt"), plan.find("-r requirements-dev.txt")
        assert 0 <= runtime < dev < plan.find(command), target
    assert not (fresh / ".venv").exists()


def test_each_stamp_is_redone_when_its_own_file_changes(tmp_path):
    """A newer requirements.txt reinstalls for run and test; a newer requirements-dev.txt for
    test only (mtimes set by hand on a venv that only has to exist)."""
    copy = checkout_copy(tmp_path)
    (copy / ".venv" / "bin").mkdir(parents=True)
    files = {"python": copy / ".venv" / "bin" / "python", "run": copy / ".venv" / ".installed-run",
             "dev": copy / ".venv" / ".installed-dev", "req": copy / "requirements.txt",
             "req_dev": copy / "requirements-dev.txt"}
    for key in ("python", "run", "dev"):
        files[key].touch()

    def at(**mtimes):
        for key, t in mtimes.items():
            os.utime(files[key], (t, t))

    at(python=1_000, req=1_000, req_dev=1_000, run=2_000, dev=3_000)
    assert "pip install" not in make_dry_run(copy, "run")
    assert "pip install" not in make_dry_run(copy, "test")

    at(req_dev=4_000)
    assert "pip install" not in make_dry_run(copy, "run")
    plan = make_dry_run(copy, "test")
    assert "-r requirements-dev.txt" in plan and "-r requirements.txt" not in plan

    at(req_dev=1_000, req=5_000)
    assert "-r requirements.txt" in make_dry_run(copy, "run")
    plan = make_dry_run(copy, "test")
    assert plan.find("-r requirements.txt") < plan.find("-r requirements-dev.txt")
    assert files["run"].stat().st_mtime == 2_000  # still a dry run
