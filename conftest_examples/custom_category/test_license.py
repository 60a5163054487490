class LicenseError(Exception):
    """What a (pretend) licensed renderer raises when every seat is taken."""


def test_render(dtf_attempt):
    # dtf_attempt: the 1-based number of this attempt (a pytest-dtf-errors fixture)
    if dtf_attempt == 1:
        raise LicenseError("no free seat on license server lic-01 (12 of 12 in use)")
