"""The ``nfnets`` command line (``python -m keras_nfnets.cli``): the parser and ``main``
(:mod:`~keras_nfnets.cli.parser`), the sub-commands (:mod:`~keras_nfnets.cli.commands`) and the
multi-worker launcher (:mod:`~keras_nfnets.cli.launch`)."""

from keras_nfnets.cli.commands import export, models_table, predict, spp_figure  # noqa: F401
from keras_nfnets.cli.parser import as_flags, build_parser, main  # noqa: F401
