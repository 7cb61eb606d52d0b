"""Wording shared by messages."""


def count(number: int, noun: str, plural: str = "") -> str:
    """``number`` and ``noun`` in the right number: "1 band", "2 bands" (``plural`` where it is not noun+s)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
