"""A real bug: an assertion failure is not worth retrying, so it fails at once (1 attempt)."""


def apply_discount(price: float, percent: float) -> float:
    return price - percent  # bug: subtracts the percent as an amount


def test_apply_discount():
    assert apply_discount(200, 10) == 180
