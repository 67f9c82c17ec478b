"""The `callctl` command line: the parser (:mod:`controller.tools.cli.main`) and one module
per command group."""
