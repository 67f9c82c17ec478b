"""callctl: a call controller for Asterisk."""


def version() -> str:
    """The installed callctl version (pyproject's); ``unknown`` when not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("callctl")
    except PackageNotFoundError:
        return "unknown"
