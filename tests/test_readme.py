"""The README's plugin examples work: each class defined in the Plugins section passes
phenorank.testing.check_plugin, as its author's own tests would run it."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def plugin_examples() -> dict[str, type]:
    text = README.read_text()
    section = text[text.index("## Plugins"):text.index("## Layout")]
    namespace: dict = {}
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.S):
        if "from my_metrics import" in block:  # the author's test file, not a plugin
            continue
        exec(compile(block, "README.md", "exec"), namespace)
    from phenorank.registry import Plugin

    return {name: value for name, value in namespace.items()
            if isinstance(value, type) and issubclass(value, Plugin) and value.name}


EXAMPLES = plugin_examples()


def test_the_readme_shows_one_example_per_family():
    families = {cls.family for cls in EXAMPLES.values()}
    assert {"metric", "encoder", "evaluator", "loader", "transform"} <= families


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_readme_plugin_example_passes_check_plugin(name, tmp_path):
    from phenorank.testing import check_plugin

    cls = EXAMPLES[name]
    if cls.family == "loader":  # the example reads .npy: its own file, as check_plugin says
        import numpy as np

        path = tmp_path / "image.npy"
        np.save(path, np.ones((2, 8, 8), np.uint16))
        assert cls().read(str(path)).shape == (2, 8, 8)
    done = check_plugin(cls)
    assert done[:2] == ["registration", "parameters"]
