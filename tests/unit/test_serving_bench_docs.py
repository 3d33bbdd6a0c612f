"""docs/clinic.md quotes the serving load benchmark from its saved runs (docs/bench/serving.json,
written by ``python -m tests.bench.serving --save``), never from memory."""

from __future__ import annotations

import json
import re

from tests.bench.serving import DOCS_JSON, ROOT, docs_table


def test_the_serving_table_in_docs_matches_the_saved_runs() -> None:
    text = (ROOT / "docs" / "clinic.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- serving-bench -->\n(.*?)<!-- end serving-bench -->", text, re.S)
    assert found is not None, "docs/clinic.md lacks the serving-bench block"
    saved = json.loads(DOCS_JSON.read_text(encoding="utf-8"))
    assert {"before", "after"} <= set(saved)
    assert found.group(1) == docs_table(saved), (
        "rewrite the block with `python -m tests.bench.serving --docs`")
