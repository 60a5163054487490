"""A node-specific failure: one worker's disk is full; the retry goes to another worker."""


def test_write_build_artifact(artifact_disk):
    assert artifact_disk("app.tar.gz", b"x" * 1024) == 1024
