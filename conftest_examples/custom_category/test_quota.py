def test_upload(dtf_attempt):
    if dtf_attempt < 3:
        raise RuntimeError("Quota exceeded for project demo-123: 1000 requests per minute")
