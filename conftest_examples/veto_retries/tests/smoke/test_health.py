def test_service_health():
    # the service is down: a retryable network error, but smoke tests are never retried
    raise ConnectionRefusedError(111, "Connection refused (health.internal:8080)")
