"""The import name is `duplexcorpus`, installing the project puts no `pipeline` module anywhere, and
an installed wheel finds its data files (schemas, labeling configs, instructions) on its own."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    code = ("import setuptools.build_meta as b, sys; "
            f"print(b.build_wheel({str(dist)!r}))")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)
    (whl,) = dist.glob("duplexcorpus-*.whl")
    return whl


def test_wheel_holds_duplexcorpus_and_its_data_and_no_pipeline_module(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"duplexcorpus"}, tops
    for data in ("duplexcorpus/schemas/v1/words.arrow.json", "duplexcorpus/schemas/v1/sample.schema.json",
                 "duplexcorpus/annotation_ui/review_2ch.xml", "duplexcorpus/annotation_ui/instructions.zh.md"):
        assert data in names, data
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "duplexcorpus = duplexcorpus.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_installed_wheel_finds_its_data_files_away_from_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:  # what pip does for a pure-Python wheel
        zf.extractall(target)
    probe = ("import duplexcorpus, duplexcorpus.contract as c, duplexcorpus.review.push as p, importlib.util; "
             "assert duplexcorpus.__file__.startswith(%r), duplexcorpus.__file__; "
             "assert importlib.util.find_spec('pipeline') is None; "
             "print(c.table_schema('events').metadata[b'duplexcorpus.schema_version'].decode(), len(p._instructions()))"
             % str(target))
    # only the wheel's files and the venv's dependencies: not the checkout, not the editable install
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    result = subprocess.run([sys.executable, "-S", "-c", "import site; site.main(); import sys; "
                             "sys.path[:] = [p for p in sys.path if 'pipeline' not in p and p not in ('', %r)]; " % str(ROOT)
                             + probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    version, instructions = result.stdout.split()
    assert version.count(".") == 2 and int(instructions) > 1000


def test_a_users_own_pipeline_module_does_not_shadow_ours(tmp_path):
    (tmp_path / "pipeline.py").write_text("raise SystemExit('shadowed')\n")
    result = subprocess.run([sys.executable, "-c", "import duplexcorpus.runner, pipeline"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert "shadowed" in result.stderr or result.returncode != 0
    ok = subprocess.run([sys.executable, "-c", "import duplexcorpus.runner; print('ok')"], cwd=tmp_path,
                        capture_output=True, text=True)
    assert ok.stdout.strip() == "ok", ok.stderr
