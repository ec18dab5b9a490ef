"""read_json: one helper reads user-given JSON files, with one-line errors naming the file."""

from __future__ import annotations

import pytest

from unflat.errors import UserError
from unflat.jsonfile import read_json
from unflat.zoo.format import ZooError


def test_read_json_returns_the_content_or_names_the_file(tmp_path):
    good = tmp_path / "good.json"
    good.write_text('{"a": [1, 2]}')
    assert read_json(good, "good") == {"a": [1, 2]}
    with pytest.raises(UserError, match=r"^--metrics m.json: no such file$"):
        read_json(tmp_path / "m.json", "--metrics m.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ZooError, match=r"^bad: not readable JSON \(JSONDecodeError: .*\); pack it again$"):
        read_json(bad, "bad", ZooError, "pack it again")
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"caf\xe9": 1}')
    with pytest.raises(UserError, match="latin: not readable JSON \\(UnicodeDecodeError"):
        read_json(latin, "latin")
