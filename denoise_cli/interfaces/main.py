"""The ``denoise`` entry point: run the click group, turn every way it can end into one line on stderr and the
documented exit status, and exit fast.

Exit codes: :class:`.cli.ExitStatus`.
"""
from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

import click

from ..core.errors import DenoiseError, UsageError, debug_enabled
from .cli import ExitStatus, cli


def main(argv: Optional[list] = None) -> None:
    """Console entry point: one-line errors, documented exit codes, no tracebacks."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        status = cli.main(args=args, prog_name="denoise", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("\ndenoise: interrupted", err=True)
        sys.exit(ExitStatus.INTERRUPTED)
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `denoise` or `denoise tv`: the help is the answer
        click.echo(exc.ctx.get_help(), err=True)
        sys.exit(ExitStatus.USAGE)
    except click.ClickException as exc:
        click.echo(f"denoise: {click_message(exc, args)}", err=True)
        sys.exit(ExitStatus.USAGE if isinstance(exc, click.UsageError) else ExitStatus.ERROR)
    except UsageError as exc:
        click.echo(f"denoise: {exc}", err=True)
        sys.exit(ExitStatus.USAGE)
    except DenoiseError as exc:
        click.echo(f"denoise: {exc}", err=True)
        sys.exit(ExitStatus.ERROR)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(ExitStatus.ERROR)
    except Exception as exc:  # a bug: still one line, the traceback only on request
        if debug_enabled():
            raise
        first = (str(exc).strip().splitlines() or ["no message"])[0]
        click.echo(f"denoise: internal error: {first} (set DENOISE_DEBUG=1 for the details)", err=True)
        sys.exit(ExitStatus.ERROR)
    sys.exit(status if isinstance(status, int) else ExitStatus.SUCCESS)


def click_message(exc: click.ClickException, args: Sequence[str]) -> str:
    """click's error as one line. A bad value that came from an environment variable names the variable, not the
    flag the user never typed; a usage error points to the command's help."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    param = getattr(exc, "param", None)
    if isinstance(exc, click.BadParameter) and isinstance(param, click.Option) and ctx is not None:
        typed = any(arg == opt or arg.startswith(opt + "=") for arg in args for opt in param.opts)
        variable = _envvar_name(param, ctx)
        if not typed and variable and os.environ.get(variable) is not None:
            message = f"environment variable {variable}: " + " ".join(exc.message.split())
    if isinstance(exc, click.UsageError) and ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


def _envvar_name(param: click.Option, ctx: click.Context) -> Optional[str]:
    if param.envvar:
        return param.envvar if isinstance(param.envvar, str) else param.envvar[0]
    if ctx.auto_envvar_prefix and param.name:
        return f"{ctx.auto_envvar_prefix}_{param.name.upper()}"
    return None


def run() -> None:
    """The installed ``denoise`` command and ``python -m denoise_cli``: :func:`main`, then a fast exit.

    Once the work is done and the output flushed, the process ends with ``os._exit``: tearing down an interpreter
    that has loaded torch takes about 0.5 s (measured), a fifth of a 4K ``denoise ssim``. Every file we write is
    closed and renamed into place before main returns and no thread is left running, so nothing is lost.
    """
    try:
        main()
        code = ExitStatus.SUCCESS
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else ExitStatus.ERROR
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # reader gone, or stream closed after a broken pipe
        code = code or ExitStatus.ERROR
    os._exit(code)
