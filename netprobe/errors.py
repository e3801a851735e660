"""Exceptions the library raises for bad input; the CLI turns them into one-line errors (exit 2)."""


class NetprobeError(ValueError):
    """Bad input to a netprobe analysis: the message is meant for the user, one line."""


class UnknownModelError(NetprobeError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self):
        # KeyError quotes its argument; keep the plain message.
        return str(self.args[0]) if self.args else ""
