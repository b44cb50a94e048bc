"""One git-commit definition for every writer of provenance."""
import re

from solver import provenance


def test_the_commit_of_a_checkout_and_none_outside_one(tmp_path, monkeypatch):
    full, short = provenance.git_commit(), provenance.git_commit(short=True)
    if full is not None:  # a checkout (an installed wheel has none)
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", full) and full.startswith(short.split("-")[0])
    monkeypatch.setattr(provenance, "ROOT", tmp_path)  # no repository here
    assert provenance.git_commit() is None


def test_the_digest_is_canonical_json():
    import hashlib
    import json
    obj = {"b": [1, 2.5, "x"], "a": {"z": None, "y": True}}
    assert provenance.digest(obj) == hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()
    assert provenance.digest(obj, compact=True) == hashlib.sha256(
        json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert provenance.digest({"a": 1, "b": 2}) == provenance.digest({"b": 2, "a": 1})
    assert len(provenance.digest(obj, length=16)) == 16
