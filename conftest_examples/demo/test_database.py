"""A systemic failure: the database is down, every test that needs it is refused.

Retrying 8 tests x 2 retries would only waste time: the pattern breaker sees
the same refusal across several tests, with retries that do not help, and
stops retrying them (their pending retries are cancelled).
"""

import pytest


@pytest.mark.parametrize("shard", range(1, 9))
def test_query_orders(database, shard):
    database.connect(shard)
