"""Split a task ``commandLine`` into argv the way the Batch node agent does on Linux.

NOTES.md §10.2: the command line "does not run under a shell", so there is no variable,
glob, tilde or command expansion, no redirection and no comments — ``$A``, ``*``, ``~``,
``>`` and ``#`` are ordinary characters. Only POSIX-shell *quoting* is applied to find word
boundaries:

* blanks (space, tab, newline) separate words;
* ``'...'`` keeps everything literally (no escapes inside);
* ``"..."`` keeps everything literally except that a backslash escapes ``"``, ``\\``, ``$``,
  `````` ` `````` and newline (elsewhere the backslash stays);
* outside quotes a backslash makes the next character literal; backslash-newline is removed;
* adjacent quoted/unquoted parts join into one word; ``''`` is an empty argument.

Unbalanced quotes or a trailing backslash raise ``ValueError``.
"""

from __future__ import annotations

__all__ = ["split_command_line"]

_BLANKS = frozenset(" \t\n\r")
_DQUOTE_ESCAPABLE = frozenset('"\\$`\n')


def split_command_line(cmd: str) -> list[str]:
    """Split ``cmd`` into arguments with shell quoting rules but no expansion."""
    words: list[str] = []
    current: list[str] = []
    in_word = False  # distinguishes an empty quoted word ('') from no word at all
    i, n = 0, len(cmd)
    while i < n:
        ch = cmd[i]
        if ch in _BLANKS:
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            i += 1
        elif ch == "\\":
            if i + 1 >= n:
                raise ValueError(f"Command line ends with a lone backslash: {cmd!r}.")
            if cmd[i + 1] != "\n":  # backslash-newline is a line continuation
                current.append(cmd[i + 1])
                in_word = True
            i += 2
        elif ch == "'":
            end = cmd.find("'", i + 1)
            if end < 0:
                raise ValueError(f"Command line has an unclosed single quote: {cmd!r}.")
            current.append(cmd[i + 1 : end])
            in_word = True
            i = end + 1
        elif ch == '"':
            i += 1
            while True:
                if i >= n:
                    raise ValueError(f"Command line has an unclosed double quote: {cmd!r}.")
                c = cmd[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and cmd[i + 1] in _DQUOTE_ESCAPABLE:
                    if cmd[i + 1] != "\n":
                        current.append(cmd[i + 1])
                    i += 2
                    continue
                current.append(c)
                i += 1
            in_word = True
        else:
            current.append(ch)
            in_word = True
            i += 1
    if in_word:
        words.append("".join(current))
    return words
