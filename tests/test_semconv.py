"""The attribute registry and the constants generated from it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_constants_are_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "semconv" / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_check_fails_when_the_registry_changes(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "semconv"))
    try:
        import generate  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    model = tmp_path / "model"
    model.mkdir()
    (model / "x.yaml").write_text(
        'version: "2"\nattributes:\n  - {key: agentotel.test.only, type: string, brief: B, stability: development}\n'
    )
    source = generate.render(generate.load_attributes(model))
    assert "AGENTOTEL_TEST_ONLY: Final = 'agentotel.test.only'" in source
    current = (ROOT / "agentotel" / "semconv.py").read_text()
    assert source != current


def test_registry_rejects_duplicates(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "semconv"))
    try:
        import generate  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    entry = "  - {key: a.b, type: string, brief: B, stability: development}\n"
    (tmp_path / "x.yaml").write_text('version: "2"\nattributes:\n' + entry + entry)
    try:
        generate.load_attributes(tmp_path)
    except ValueError as error:
        assert "a.b" in str(error)
    else:
        raise AssertionError("duplicate attribute was accepted")


def test_code_never_spells_an_attribute_name() -> None:
    """Attribute names come from agentotel.semconv; a literal 'gen_ai.…' or 'agentotel.…' key in code is a bug."""
    from agentotel import semconv

    names = {value for key, value in vars(semconv).items() if key.isupper() and isinstance(value, str) and "." in value}
    offenders = []
    for path in (ROOT / "agentotel").rglob("*.py"):
        if path.name == "semconv.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for literal in re.findall(r"[\"']([a-z_]+(?:\.[a-z_]+)+)[\"']", line):
                if literal in names:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {literal}")
    assert not offenders, "\n".join(offenders)
