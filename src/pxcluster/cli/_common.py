"""CLI layer: flags every command shares, and logging set-up."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pxcluster.profile import ClusterConfig, ProfilePaths, load_config, profile_root
from pxcluster.profile._config import write_default_config


def add_version_flag(parser: argparse.ArgumentParser) -> None:
    """``--version``: the package's version, then exit."""
    from pxcluster import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")


def add_profile_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        default="default",
        help=f"profile name (folder {profile_root()}/profile_NAME; default: %(default)s)",
    )
    parser.add_argument(
        "--profile-dir",
        type=Path,
        default=None,
        help=f"use this profile folder instead of {profile_root()}/profile_NAME",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log (default: %(default)s)",
    )


def profile_from(args: argparse.Namespace) -> tuple[ProfilePaths, ClusterConfig]:
    """The profile's paths and its configuration file's settings."""
    paths = ProfilePaths.for_profile(args.profile, args.profile_dir).ensure()
    write_default_config(paths.config_file)  # the settings a user may change, documented
    try:
        config = load_config(paths.config_file)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    return paths, config


def setup_logging(level: str, log_file: Path | None, redirect_output: bool = False) -> None:
    """Log to ``log_file``; with ``redirect_output`` the process's own stdout and stderr go
    there too, so a crash's traceback is in the same file as the log."""
    handlers: list[logging.Handler] = []
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        if redirect_output:
            fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
            handlers.append(logging.StreamHandler(sys.stderr))
        else:
            handlers.append(logging.FileHandler(log_file))
    if not redirect_output and sys.stderr.isatty():
        handlers.append(logging.StreamHandler(sys.stderr))
    if not handlers:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
        handlers=handlers,
    )
