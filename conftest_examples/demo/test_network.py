"""A flaky network call: the first attempt is refused, the retry (on another worker) passes."""


def fetch_prices(attempt: int) -> dict[str, float]:
    if attempt == 1:
        raise ConnectionResetError(104, "Connection reset by peer while fetching https://prices.example.test/v1")
    return {"EUR": 1.0, "USD": 1.08}


def test_fetch_prices(dtf_attempt):
    assert fetch_prices(dtf_attempt)["EUR"] == 1.0


def test_local_math():
    assert sum(range(10)) == 45
