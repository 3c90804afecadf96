"""What every export reads first: a finished run, or a specific reason why not."""
from __future__ import annotations

from click.testing import CliRunner

from duplexcorpus.cli import main


def test_an_unfinished_run_is_refused_with_the_missing_table(tmp_path):
    (tmp_path / "run.json").write_text("{}")
    result = CliRunner().invoke(main, ["export", "textgrid", str(tmp_path), "--to", str(tmp_path / "tg")])
    assert result.exit_code == 1 and "is not a finished run" in result.output and "segments.parquet" in result.output
