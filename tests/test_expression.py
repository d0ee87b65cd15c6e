"""The expression vector: the table, validation, intensity, mixing and overrides."""

import pytest

from engine.errors import UsageError
from engine.expression import PARAMETERS, Expression, check_intensity, mix, parse_assignment, parse_weighted_name


def test_table_has_the_twelve_parameters_with_design_ranges():
    ranges = {p.name: (p.minimum, p.maximum, p.default) for p in PARAMETERS}
    assert ranges == {
        "rotate_pitch": (-20, 20, 0), "rotate_yaw": (-20, 20, 0), "rotate_roll": (-20, 20, 0),
        "blink": (-20, 5, 0), "eyebrow": (-10, 15, 0), "wink": (0, 25, 0), "pupil_x": (-15, 15, 0),
        "pupil_y": (-15, 15, 0), "aaa": (-30, 120, 0), "eee": (-20, 15, 0), "woo": (-20, 15, 0),
        "smile": (-0.3, 1.3, 0)}
    assert all(p.meaning for p in PARAMETERS)


def test_out_of_range_names_parameter_and_range():
    with pytest.raises(UsageError, match=r"smile=2 is out of range: smile takes -0.3 to 1.3"):
        Expression({"smile": 2})


def test_unknown_parameter_lists_known_ones():
    with pytest.raises(UsageError, match="unknown parameter 'grin'.*smile"):
        Expression({"grin": 1})


def test_not_a_number_and_nan_are_refused():
    with pytest.raises(UsageError, match="must be a number"):
        Expression({"aaa": "wide"})
    # NaN is not a number: it is said so, not "out of range"
    with pytest.raises(UsageError, match="aaa must be a number, got nan"):
        Expression({"aaa": float("nan")})
    with pytest.raises(UsageError, match="aaa must be a number, got 'nan'"):
        parse_assignment("aaa=nan")
    with pytest.raises(UsageError, match="intensity must be a number"):
        check_intensity(float("nan"))
    with pytest.raises(UsageError, match="weight in --emotion happy:nan must be a number"):
        parse_weighted_name("happy:nan")
    with pytest.raises(UsageError, match="out of range"):
        parse_assignment("aaa=1000")


def test_defaults_fill_the_vector():
    vector = Expression({"aaa": 30}).as_dict()
    assert list(vector) == [p.name for p in PARAMETERS]
    assert vector["aaa"] == 30 and vector["smile"] == 0


def test_intensity_scales_and_clamps():
    happy = {"smile": 1.0, "eee": 4, "blink": -3}
    half = mix([(happy, 1.0)], 0.5)
    assert half["smile"] == pytest.approx(0.5) and half["eee"] == pytest.approx(2)
    strong = mix([(happy, 1.0)], 1.5)
    assert strong["smile"] == pytest.approx(1.3)  # 1.5 clamped to the range
    assert strong["eee"] == pytest.approx(6)


def test_intensity_out_of_range():
    with pytest.raises(UsageError, match="0 to 1.5"):
        check_intensity(2)


def test_mixing_is_a_weighted_sum():
    mixed = mix([({"smile": 1.0, "aaa": 20}, 0.5), ({"aaa": 40, "eyebrow": 10}, 0.5)])
    assert mixed["smile"] == pytest.approx(0.5)
    assert mixed["aaa"] == pytest.approx(30)
    assert mixed["eyebrow"] == pytest.approx(5)


def test_overrides_are_exact_and_validated():
    base = mix([({"smile": 1.0}, 1.0)])
    assert base.with_overrides({"smile": 0.2})["smile"] == 0.2
    with pytest.raises(UsageError, match="wink"):
        base.with_overrides({"wink": -1})


def test_parse_flags():
    assert parse_assignment("aaa=40") == ("aaa", 40.0)
    assert parse_weighted_name("happy:0.5") == ("happy", 0.5)
    assert parse_weighted_name("sleepy") == ("sleepy", 1.0)
    for bad in ("aaa", "=3", "aaa="):
        with pytest.raises(UsageError):
            parse_assignment(bad)
    with pytest.raises(UsageError, match="weight"):
        parse_weighted_name("happy:lots")
