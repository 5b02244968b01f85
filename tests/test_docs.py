"""The documentation's Python blocks run, page by page, and the site builds.

Each page's ```` ```python ```` blocks run in order as one script, in a fresh
directory. A block right after the comment ``<!-- docs-test: needs-file VAR -->``
needs the file named by the environment variable ``VAR`` (default: looked up in
``shared/data/`` next to the checkout) and is left out where that file is absent.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [DOCS / "getting-started.md", *sorted((DOCS / "tutorials").glob("*.md")),
         ROOT / "README.md"]
#: pages whose extra is optional, and the module the page needs
NEEDS = {"overcooked": "jaxmarl", "brax": "brax", "pettingzoo": "mpe2"}
#: files the ``needs-file`` marker can name, and where they are found by default
FILES = {"MAIRL_GEMS_DATA": ROOT.parent / "shared" / "data" / "gems_mamql_authors.pkl.gz"}
BLOCK = re.compile(r"(?:<!-- docs-test: needs-file (\w+) -->\n)?```python\n(.*?)```", re.S)


def page_blocks(text: str) -> list[tuple[str | None, str]]:
    """``(needed file variable or None, code)`` for every python block of a page."""
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


def runnable(blocks, monkeypatch) -> tuple[str, list[str]]:
    """The code to run and the reasons for the blocks left out."""
    code, skipped = [], []
    for var, block in blocks:
        if var is not None:
            path = Path(os.environ.get(var, FILES.get(var, "")))
            if not path.is_file():
                skipped.append(f"{var} file absent ({path})")
                continue
            monkeypatch.setenv(var, str(path))
        code.append(block)
    return "\n".join(code), skipped


def _param(path: Path):
    # every page runs in the integration tier (tests/conftest.py INTEGRATION)
    return pytest.param(path, id=str(path.relative_to(ROOT).with_suffix("")))


def test_page_blocks_honour_the_file_marker(monkeypatch):
    text = ("```python\na = 1\n```\n<!-- docs-test: needs-file NO_SUCH_FILE_VAR -->\n"
            "```python\nb = 2\n```\n```python\nc = 3\n```\n")
    blocks = page_blocks(text)
    assert [v for v, _ in blocks] == [None, "NO_SUCH_FILE_VAR", None]
    monkeypatch.delenv("NO_SUCH_FILE_VAR", raising=False)
    code, skipped = runnable(blocks, monkeypatch)
    assert code == "a = 1\n\nc = 3\n" and len(skipped) == 1


@pytest.mark.parametrize("path", [_param(p) for p in PAGES])
def test_page_runs(path, tmp_path, monkeypatch):
    if path.stem in NEEDS:
        pytest.importorskip(NEEDS[path.stem])
    blocks = page_blocks(path.read_text())
    assert blocks, f"{path.name} has no python blocks"
    code, skipped = runnable(blocks, monkeypatch)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{path.stem}"}
    exec(compile(code, str(path), "exec"), namespace)  # noqa: S102
    if skipped:
        pytest.skip(f"{path.name} ran without {len(skipped)} block(s): {'; '.join(skipped)}")


def test_site_builds_strict(tmp_path):
    """``mkdocs build --strict``: every page, link and API reference entry resolves."""
    pytest.importorskip("mkdocstrings_handlers.python")
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or "mkdocs"
    out = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "algos" / "index.html").is_file()


def test_api_reference_covers_every_public_module():
    from tests.test_docstrings import public_modules

    documented = set(re.findall(r"^::: ([\w.]+)", "\n".join(
        p.read_text() for p in (DOCS / "api").glob("*.md")), flags=re.M))
    missing = sorted(set(public_modules()) - documented)
    assert not missing, f"no API reference page for {missing}"
