import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from mindvl.common.cli import cli
from mindvl.common.schemas import schema_texts

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_all_groups():
    out = CliRunner().invoke(cli, ["--help"]).output
    for group in ("data", "manifest", "train", "ckpt", "demo", "schemas", "tokenizer"):
        assert f"  {group} " in out


def test_every_command_has_help():
    runner = CliRunner()

    def walk(args):
        res = runner.invoke(cli, [*args, "--help"])
        assert res.exit_code == 0, (args, res.output)
        cmd = cli
        for a in args:
            cmd = cmd.get_command(None, a)
        if hasattr(cmd, "list_commands"):
            for sub in cmd.list_commands(None):
                walk([*args, sub])

    walk([])


def test_checked_in_schemas_are_current():
    for name, text in schema_texts().items():
        path = ROOT / "docs" / "schemas" / name
        assert path.read_text(encoding="utf-8") == text, (
            f"{name} is stale: run `uv run mindvl schemas`"
        )


def test_user_error_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mindvl.common.cli",
            "tokenizer",
            "train",
            str(tmp_path / "missing.txt"),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.startswith("error: not a file:")
    assert "Traceback" not in proc.stderr


def test_bad_flag_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mindvl.common.cli", "schemas", "--bogus"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert "--bogus" in proc.stderr


def test_nonzero_exit_codes_reach_the_shell(tmp_path):
    """`mindvl schemas --check` on stale schemas exits 1 through click's Exit, which click
    returns rather than raises outside standalone mode (CI gates rely on it)."""
    proc = subprocess.run(
        [sys.executable, "-m", "mindvl.common.cli", "schemas", "--check", "--out", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "stale schemas" in proc.stderr
