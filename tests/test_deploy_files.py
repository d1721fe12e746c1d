"""The deploy files agree with each other and with the app, checked in `make test` (the full
recipe runs in CI: deploy/smoke.py). Read with the smoke's own parsers."""
from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_smoke():
    spec = importlib.util.spec_from_file_location("deploy_smoke", ROOT / "deploy" / "smoke.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


smoke = _load_smoke()


def _unit_argv(name: str) -> list[str]:
    (line,) = smoke.parse_unit(smoke.UNIT_DIR / name)["Service"]["ExecStart"]
    return shlex.split(line)


def _without_bind(argv: list[str]) -> list[str]:
    """The command with the program's directory and gunicorn's -b address left out."""
    out, skip = [], False
    for i, word in enumerate(argv):
        if skip:
            skip = False
            continue
        if word == "-b":
            skip = True
            continue
        out.append(Path(word).name if i == 0 else word)
    return out


@pytest.mark.parametrize(("unit", "process"), [
    ("stocklink-migrate.service", "release"), ("stocklink-web.service", "web"),
    ("stocklink-worker@.service", "worker"), ("stocklink-cron.service", "cron")])
def test_units_and_procfile_run_the_same_commands(unit, process):
    procfile = smoke.parse_procfile(smoke.PROCFILE)
    assert _without_bind(_unit_argv(unit)) == _without_bind(shlex.split(procfile[process]))


def test_every_long_running_unit_restarts_always_and_waits_for_the_migration():
    for name in ("stocklink-web.service", "stocklink-worker@.service", "stocklink-cron.service"):
        unit = smoke.parse_unit(smoke.UNIT_DIR / name)
        assert unit["Service"]["Restart"] == ["always"], name
        assert "stocklink-migrate.service" in unit["Unit"]["Requires"][0], name
        assert "stocklink-migrate.service" in unit["Unit"]["After"][0], name
        assert unit["Install"]["WantedBy"] == ["stocklink.target"], name
    migrate = smoke.parse_unit(smoke.UNIT_DIR / "stocklink-migrate.service")["Service"]
    assert migrate["Type"] == ["oneshot"] and migrate["RemainAfterExit"] == ["yes"]


def test_the_web_unit_binds_where_the_environment_file_says():
    env = smoke.parse_env_file(smoke.ENV_EXAMPLE.read_text(encoding="utf-8"))
    argv = smoke.expand_exec(smoke.parse_unit(smoke.UNIT_DIR / "stocklink-web.service")["Service"]["ExecStart"][0],
                             env)
    assert argv[argv.index("-b") + 1] == env["STOCKLINK_BIND"] == "127.0.0.1:8000"


def test_every_key_of_the_example_environment_file_is_read_by_someone():
    """A misspelt key (MAIL_USE_TSL) would be ignored silently by the app."""
    env = smoke.parse_env_file(smoke.ENV_EXAMPLE.read_text(encoding="utf-8"))
    config_source = (ROOT / "stocklink" / "config.py").read_text(encoding="utf-8") + \
        (ROOT / "stocklink" / "__init__.py").read_text(encoding="utf-8")
    units = "".join(p.read_text(encoding="utf-8") for p in smoke.UNIT_DIR.iterdir())
    for key in env:
        assert f'"{key}"' in config_source or f"${{{key}}}" in units, key


def test_expand_exec_follows_systemd():
    env = {"BIND": "127.0.0.1:9000", "OPTS": "-a  -b"}
    assert smoke.expand_exec("/x/run -b ${BIND} --name=w%i $OPTS 100%%", env, "3") == [
        "/x/run", "-b", "127.0.0.1:9000", "--name=w3", "-a", "-b", "100%"]
    with pytest.raises(smoke.SmokeFailure):
        smoke.expand_exec("/x/run %n", env)


def test_env_file_parser_reads_systemd_syntax():
    text = "# comment\n; also\n\nA=1\nB = two words \nC=\"quoted # not a comment\"\nD=\n"
    assert smoke.parse_env_file(text) == {"A": "1", "B": "two words", "C": "quoted # not a comment", "D": ""}
    with pytest.raises(smoke.SmokeFailure):
        smoke.parse_env_file("not a line\n")


def test_the_readme_shows_the_operator_commands_the_smoke_runs():
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    for command in smoke.SYSTEMD_OPERATOR_COMMANDS + smoke.PROCFILE_OPERATOR_COMMANDS:
        assert command in readme
    assert re.search(r"enable --now stocklink\.target .*stocklink-worker@\{1\.\.2\}", readme)
