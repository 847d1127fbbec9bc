"""The ``scnrestore`` command line (typer + rich): :mod:`.main` holds the app,
one module per command (:mod:`.restore`, :mod:`.train`, :mod:`.evaluate`,
:mod:`.models`), :mod:`.options` what they share. Nothing in the library
imports this package."""

from __future__ import annotations

from .main import app

__all__ = ["app"]
