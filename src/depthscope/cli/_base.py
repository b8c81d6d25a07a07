"""The command registry: a new command is one class in one module of this package (README, "Extending")."""

from __future__ import annotations

import argparse
from typing import ClassVar

from depthscope.registry import Registry


class Command:
    """A ``depthscope`` sub-command: ``configure`` adds its options, ``run`` calls the library and prints.
    The class docstring is the command's ``--help`` description; ``help`` is its line in ``depthscope --help``."""

    name: ClassVar[str]
    help: ClassVar[str]

    def configure(self, p: argparse.ArgumentParser) -> None:
        raise NotImplementedError

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


COMMANDS: Registry[type[Command]] = Registry("command")


def register_command(cls: type[Command]) -> type[Command]:
    """Class decorator: add ``cls`` to :data:`COMMANDS` under ``cls.name``."""
    COMMANDS.register(cls.name)(cls)
    return cls
