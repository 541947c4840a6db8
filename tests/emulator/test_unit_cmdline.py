"""Table tests for batch_emulator.protocol.cmdline (NOTES.md §10.2)."""

from __future__ import annotations

import shlex

import pytest

from batch_emulator.protocol.cmdline import split_command_line

CASES = [
    ("", []),
    ("   ", []),
    ("echo hello", ["echo", "hello"]),
    ("  echo \t hello  \n", ["echo", "hello"]),
    ("/bin/sh -c \"echo $A && echo 'b c'\"", ["/bin/sh", "-c", "echo $A && echo 'b c'"]),
    ("/bin/sh -c 'echo \"$HOME\" > out.txt'", ["/bin/sh", "-c", 'echo "$HOME" > out.txt']),
    ("python3 -c 'print(1)'", ["python3", "-c", "print(1)"]),
    ("echo $A ~ * # x > f", ["echo", "$A", "~", "*", "#", "x", ">", "f"]),
    ("a '' b", ["a", "", "b"]),
    ('a "" b', ["a", "", "b"]),
    ("ab'c d'e", ["abc de"]),
    (r"a\ b c", ["a b", "c"]),
    (r"a\'b", ["a'b"]),
    (r'"a\"b"', ['a"b']),
    (r'"a\$b \\ \n"', ["a$b \\ \\n"]),
    (r"'a\"b'", ['a\\"b']),
    ("a\\\nb", ["ab"]),
    ('"multi\nline"', ["multi\nline"]),
    ("cmd /c MyCommand", ["cmd", "/c", "MyCommand"]),
]


@pytest.mark.parametrize(("cmd", "argv"), CASES)
def test_split(cmd: str, argv: list[str]) -> None:
    assert split_command_line(cmd) == argv


# shlex differs from a POSIX shell on "\$" inside double quotes and on backslash-newline,
# and treats "#" as a comment only with comments=True; those cases are left out.
SHLEX_COMPATIBLE = [
    c for c in CASES if "#" not in c[0] and r"\$" not in c[0] and "\\\n" not in c[0]
]


@pytest.mark.parametrize(("cmd", "argv"), SHLEX_COMPATIBLE)
def test_agrees_with_posix_shlex(cmd: str, argv: list[str]) -> None:
    # Same quoting rules as a POSIX shell's word splitting (shlex is an independent oracle).
    assert shlex.split(cmd) == argv


@pytest.mark.parametrize(
    ("cmd", "fragment"),
    [
        ("echo 'abc", "single quote"),
        ('echo "abc', "double quote"),
        ('echo "abc\\"', "double quote"),
        ("echo abc\\", "backslash"),
    ],
)
def test_unbalanced(cmd: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        split_command_line(cmd)
