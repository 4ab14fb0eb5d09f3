"""The shared argument checks: TypeError for a wrong type, ValueError for a bad value, clear messages."""

from __future__ import annotations

import numpy as np
import pytest

from tutorial_lib._validate import check_bool, check_choice, check_int, check_number, suggest


def test_check_int_accepts_integers_and_numpy_integers():
    assert check_int("n", 3, minimum=1) == 3
    assert check_int("n", np.int64(4), minimum=1, maximum=4) == 4
    assert type(check_int("n", np.int64(4))) is int


@pytest.mark.parametrize("value", [True, 2.0, "3", None])
def test_check_int_refuses_other_types(value):
    with pytest.raises(TypeError, match=r"n must be an integer, got"):
        check_int("n", value, minimum=1)


def test_check_int_bounds_are_inclusive_and_named():
    with pytest.raises(ValueError, match=r"n must be >= 1 and <= 4, got 5"):
        check_int("n", 5, minimum=1, maximum=4)
    with pytest.raises(ValueError, match=r"n must be >= 1, got 0"):
        check_int("n", 0, minimum=1)


def test_check_number():
    assert check_number("lr", 1) == 1.0 and isinstance(check_number("lr", 1), float)
    assert check_number("p", 1.0, minimum=0, maximum=1) == 1.0
    with pytest.raises(ValueError, match=r"p must be >= 0 and < 1, got 1"):
        check_number("p", 1.0, minimum=0, maximum=1, max_inclusive=False)
    with pytest.raises(ValueError, match=r"lr must be > 0, got 0"):
        check_number("lr", 0.0, minimum=0, min_inclusive=False)
    with pytest.raises(ValueError, match="finite"):
        check_number("lr", float("nan"))
    for bad in ("0.1", True, None, [0.1]):
        with pytest.raises(TypeError, match=r"lr must be a number"):
            check_number("lr", bad)


def test_check_bool():
    assert check_bool("flip", False) is False
    for bad in (0, 1, "yes", None):
        with pytest.raises(TypeError, match="flip must be True or False"):
            check_bool("flip", bad)


def test_check_choice_suggests_the_closest_name():
    assert check_choice("optimizer", "sgd", ("adamw", "sgd")) == "sgd"
    with pytest.raises(ValueError, match=r"unknown optimizer 'adam'\. Did you mean 'adamw'\? Valid values: adamw, sgd"):
        check_choice("optimizer", "adam", ("adamw", "sgd"))
    with pytest.raises(TypeError, match="optimizer must be a string"):
        check_choice("optimizer", 3, ("adamw", "sgd"))
    assert suggest("zzzz", ("adamw", "sgd")) == ""
