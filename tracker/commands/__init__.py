"""One module per `tracker` subcommand: ``add_arguments(parser)`` and ``main(args, settings)``.

Module level imports are stdlib only (``tracker --help`` imports them all); the real work and its
imports happen inside ``main``.
"""
