"""Every Python block of docs/ops.md runs as written (the page promises one runnable example per op)."""
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "ops.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_page_has_an_example_per_op():
    import fe_fast.ops as ops

    text = "\n".join(BLOCKS)
    for name in ops.__all__:
        if name[0].islower():
            assert f"ops.{name}(" in text, f"docs/ops.md has no runnable example of fe_fast.ops.{name}"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_block_runs(block, capsys):
    exec(compile(block, str(DOC), "exec"), {})
    assert capsys.readouterr().out.strip(), "each example prints what it computed"
