"""Exceptions the library raises for bad input; the CLI turns them into one-line errors (exit 2)."""


class NetprobeError(ValueError):
    """Bad input to a netprobe analysis: the message is meant for the user, one line, in the library's words.

    `said`: {library phrase: CLI phrase} for the parameters it names, each phrase long enough to occur only in the
    fixed words of the message, never in a value it quotes (`{"input with input_size": "input with --input-size"}`),
    so the CLI can say the same in its flags (`for_cli`).
    """

    def __init__(self, message: str, *, said: dict | None = None):
        super().__init__(message)
        self.said = dict(said or {})

    def for_cli(self) -> str:
        """The message with the parameters it names as the CLI's flags."""
        text = str(self)
        for words, flag in self.said.items():
            text = text.replace(words, flag)
        return text


class UnknownModelError(NetprobeError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self):
        # KeyError quotes its argument; keep the plain message.
        return str(self.args[0]) if self.args else ""
