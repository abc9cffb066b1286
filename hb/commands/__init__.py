"""One module per `hb` subcommand, each with `configure(parser)` and `run(args) -> int`."""
