"""Self-check helpers for the notebooks' exercises.

Each ``check_*`` function raises ``AssertionError`` with a friendly hint when the learner's answer is
wrong, and prints a short confirmation when it is right, so a check cell reads as one line.
"""

from __future__ import annotations


def _ok(message: str) -> None:
    """Print the confirmation line every passing check ends with."""
    print(f"Correct: {message}")


# --- 00 setup ---------------------------------------------------------------------------------


def check_batch_bytes(answer_mib: float, *, batch: int, channels: int, size: int, bytes_per_value: int) -> None:
    """Check a batch-memory estimate in MiB (2**20 bytes), to within rounding."""
    expected = batch * channels * size * size * bytes_per_value / 2**20
    if not isinstance(answer_mib, (int, float)):
        raise AssertionError(f"store a number in MiB, got {type(answer_mib).__name__}")
    if abs(answer_mib - expected * 2**20 / 1e6) < 1e-6 * expected:
        raise AssertionError("that is megabytes (1e6 bytes); divide by 2**20 for mebibytes")
    if abs(answer_mib - expected / 4) < 1e-9 * expected and bytes_per_value == 4:
        raise AssertionError("each float32 value takes 4 bytes: multiply by 4")
    if abs(answer_mib - expected) > 1e-6 * expected:
        raise AssertionError(f"not quite: count values (batch x channels x height x width), x bytes each, / 2**20")
    _ok(f"{expected:.2f} MiB")
