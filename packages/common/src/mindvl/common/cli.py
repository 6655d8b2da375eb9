"""The ``mindvl`` command. Groups come from installed packages through the ``mindvl.cli``
entry-point group, so ``mindvl.common`` never imports the data engine or the trainer."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import click

from mindvl.common.errors import UserError
from mindvl.common.lazy_group import LazyGroup

_PLUGINS = {ep.name: ep.value for ep in entry_points(group="mindvl.cli")}

_BUILTIN = {
    "schemas": "mindvl.common.schemas:schemas_command",
    "tokenizer": "mindvl.common.tokenizer_train:tokenizer_group",
    "demo": "mindvl.common.demo:demo_command",
}


@click.group(
    cls=LazyGroup,
    lazy={**_BUILTIN, **_PLUGINS},
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="mindvl-common", prog_name="mindvl")
def cli() -> None:
    """mindvl: curate image-text data on Ray and train MindVL-style models on packed shards."""


def main(argv: list[str] | None = None) -> None:
    """Console entry: user errors print one line and exit non-zero, without a traceback."""
    try:
        code = cli.main(args=argv, prog_name="mindvl", standalone_mode=False)
        # without standalone mode click *returns* the code of ctx.exit(N) / Exit(N)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:  # includes UserError and usage errors
        msg = (
            e.format_message() if isinstance(e, UserError) else " ".join(e.format_message().split())
        )
        click.echo(f"error: {msg}", err=True)
        sys.exit(e.exit_code)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        click.echo(f"error: {e.strerror}: {e.filename}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
