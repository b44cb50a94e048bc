"""One git-commit definition for every writer of provenance."""
import re

from solver import provenance


def test_the_commit_of_a_checkout_and_none_outside_one(tmp_path, monkeypatch):
    full, short = provenance.git_commit(), provenance.git_commit(short=True)
    if full is not None:  # a checkout (an installed wheel has none)
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", full) and full.startswith(short.split("-")[0])
    monkeypatch.setattr(provenance, "ROOT", tmp_path)  # no repository here
    assert provenance.git_commit() is None
