"""The `duplexcorpus` command line (click)."""
from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import click
import yaml

from duplexcorpus.config import WorkflowError, load_workflow


def _overrides(pairs: tuple[str, ...]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"{pair!r}: expected key=value, e.g. ipu.bridge=0.3")
        key, value = pair.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log every decision (ignored files, cache hits).")
@click.pass_context
def main(ctx, verbose: bool) -> None:
    """duplexcorpus: conversational recordings in, full-duplex training corpora out."""
    ctx.ensure_object(dict)["verbose"] = verbose
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(), help="Output folder (re-running resumes).")
@click.option("--workflow", type=click.Path(exists=True), help="Workflow YAML (default: embedded defaults).")
@click.option("--metadata", type=click.Path(exists=True), help="Speaker/scenario CSV (default: INPUT/metadata.csv).")
@click.option("--ray-address", default=None,
              help="Join this Ray cluster by its head's GCS address HOST:PORT, or 'auto', from a cluster node "
                   "(default: RAY_ADDRESS, else a private local Ray). ray:// (Ray Client) is not supported.")
@click.option("--executor", type=click.Choice(["ray", "local"]), default="ray", show_default=True,
              help="'local' runs every stage in this process (debugging).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a workflow value, e.g. --set ipu.bridge=0.3")
@click.option("--quiet", is_flag=True, help="Print only quarantined recordings, errors and the summary.")
@click.option("--verbose", is_flag=True, help="Print everything: every event, Ray's own progress and logs.")
@click.option("--no-report", is_flag=True, help="Skip the HTML report and dataset card (`duplexcorpus report OUT` later).")
@click.pass_context
def run(ctx, input_path, out, workflow, metadata, ray_address, executor, sets, quiet, verbose, no_report):
    """Process INPUT (a folder or a CSV/Parquet manifest) into OUT: tables, shards, stats.

    Shows a line per stage (recordings, audio hours, speed, time left) and one per quarantined
    recording; Ray's and the libraries' own logs go to OUT/logs/."""
    from duplexcorpus.console import NORMAL, QUIET, VERBOSE, RunConsole
    from duplexcorpus.runlogs import run_logs
    from duplexcorpus.runner import run as run_pipeline

    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose exclude each other")
    verbosity = VERBOSE if verbose or ctx.obj.get("verbose") else QUIET if quiet else NORMAL
    try:
        wf = load_workflow(workflow, _overrides(sets))
    except WorkflowError as err:
        raise click.UsageError(str(err)) from None
    if executor == "ray":  # a ray:// address fails here, before any work
        from duplexcorpus.ray_runtime import RayClientNotSupported, check_address

        try:
            check_address(wf.ray, ray_address)
        except RayClientNotSupported as err:
            raise click.UsageError(str(err)) from None
    if executor == "ray" and verbosity != VERBOSE:  # Ray Data's progress would go to OUT/logs/ray.log every 10 s
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False

    from duplexcorpus.inputs import InputError
    from duplexcorpus.ray_runtime import RayStartError
    from duplexcorpus.storage import StageCache, as_out_of_space

    try:
        width = shutil.get_terminal_size().columns  # read now: in a moment fds 1 and 2 point at OUT/logs/ray.log
        with run_logs(out, verbosity) as streams, RunConsole(streams.err, verbosity, width=width) as hook:
            result = run_pipeline(input_path, out, wf, executor=executor, ray_address=ray_address, metadata=metadata,
                                  hook=hook)
    except InputError as err:  # INPUT itself (or its metadata file) is unusable
        raise click.UsageError(str(err)) from None
    except RayStartError as err:  # one line, not Ray's traceback; the details are in OUT/logs/
        raise click.ClickException(str(err)) from None
    except Exception as err:  # a full disk anywhere (a stage, the tables, the shards) stops the run cleanly
        full = as_out_of_space(err, Path(out).resolve())
        if full is None:
            raise
        StageCache(Path(out) / "cache").remove_partial()  # nothing half-written stays
        raise click.ClickException(str(full)) from None
    speed = result.audio_seconds / max(result.seconds, 1e-9)
    click.echo(f"done: {result.recordings} recordings, {result.quarantined} quarantined, "
               f"{len(result.shards)} shards in {result.seconds:.1f} s ({speed:.1f}x real time per channel-second)")
    asr = json.loads((Path(out) / "stats.json").read_text()).get("asr") if (Path(out) / "stats.json").exists() else None
    if asr:
        why = ", ".join(f"{k} {v}" for k, v in asr["ipus_without_words_by_reason"].items())
        click.echo(f"words: {asr['ipus_with_words']:.1%} of {asr['ipus']} IPUs, {asr['speech_seconds_with_words']:.1%} "
                   f"of speech seconds" + (f"; without words: {why}" if why else ""))
    report = ""
    if not no_report:  # the corpus report and the dataset card, from the tables just written
        from duplexcorpus.report import write_report

        report = f"   report: {write_report(out)}"
    click.echo(f"tables: {Path(out) / 'tables'}   shards: {Path(out) / 'shards'}   stats: {Path(out) / 'stats.json'}"
               + report)
    click.echo(f"logs: {streams.logs}" + (f"   quarantined inputs and reasons: {Path(out) / 'tables' / 'quarantine.parquet'}"
                                          if result.quarantined else ""))


@main.command()
@click.argument("out", type=click.Path(exists=True))
@click.option("--truth", required=True, type=click.Path(exists=True), help="Folder with reference segments/events parquet.")
@click.option("--collar", default=0.2, show_default=True, help="Boundary collar in seconds.")
@click.option("--by-recording", is_flag=True, help="Also one IPU row per recording.")
@click.option("--json", "as_json", is_flag=True, help="The whole report as JSON (every recording included).")
def evaluate(out, truth, collar, by_recording, as_json):
    """Score OUT's tables against reference tables (F1, boundary error): one row per metric."""
    from duplexcorpus.evaluate import score_run, score_table

    report = score_run(Path(out) / "tables", truth, collar)
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    for line in score_table(report, by_recording):
        click.echo(line)


@main.command()
@click.argument("out", type=click.Path(exists=True))
def validate(out):
    """Check every table and shard sample in OUT against the data contract (schemas/)."""
    from duplexcorpus.validate import validate_output

    problems = validate_output(Path(out))
    for p in problems:
        click.echo(p, err=True)
    click.echo(json.dumps({"ok": not problems, "problems": len(problems)}))
    sys.exit(1 if problems else 0)


@main.command()
@click.argument("out", type=click.Path(exists=True))
def shard(out):
    """Rebuild OUT's samples, tables and shards from its cache (after `review pull`): nothing upstream re-runs."""
    from duplexcorpus.runner import rebuild

    result = rebuild(out)
    click.echo(json.dumps({"recordings": result.recordings, "shards": len(result.shards)}))


@main.command()
@click.argument("out", type=click.Path(exists=True))
@click.option("--recording-pages", type=int, default=None, help="Pages for the first N recordings only (default: all).")
@click.option("--license", "license_", default=None, help="Licence id for the dataset card, e.g. cc-by-4.0 (default: other).")
def report(out, recording_pages, license_):
    """Write OUT/report/ (static HTML: statistics, plots, a page per recording) and the dataset card OUT/README.md."""
    from duplexcorpus.report import write_report

    click.echo(f"report: {write_report(out, recording_pages=recording_pages, license=license_)}")


@main.group()
def review() -> None:
    """Route uncertain regions to Label Studio and merge the corrections back."""


def _bridge_or_exit():
    from duplexcorpus.review.labelstudio import LabelStudioBridge, ReviewError

    try:
        return LabelStudioBridge()
    except ReviewError as err:
        raise click.ClickException(str(err)) from None


@review.command("push")
@click.argument("out", type=click.Path(exists=True))
def review_push(out):
    """Create/update the project and import the riskiest windows as tasks (idempotent)."""
    from duplexcorpus.review.push import push

    from duplexcorpus.review.labelstudio import ReviewError

    try:
        report = push(Path(out), _bridge_or_exit())
    except ReviewError as err:
        raise click.ClickException(str(err)) from None
    click.echo(json.dumps(report))


@review.command("pull")
@click.argument("out", type=click.Path(exists=True))
@click.option("--no-shard", is_flag=True, help="Only merge; rebuild later with `duplexcorpus shard OUT`.")
def review_pull(out, no_shard):
    """Export completed annotations, validate, merge (human labels win), audit, re-shard."""
    from duplexcorpus.review.labelstudio import ReviewError
    from duplexcorpus.review.push import pull

    try:
        report = pull(Path(out), _bridge_or_exit(), reshard=not no_shard)
    except ReviewError as err:
        raise click.ClickException(str(err)) from None
    click.echo(json.dumps(report))


@review.command("serve")
@click.option("--port", default=8080, show_default=True)
@click.option("--data-dir", default="~/.local/share/duplexcorpus/labelstudio", show_default=True)
@click.option("--document-root", default=".", show_default=True,
              help="Folder Label Studio may serve audio from; must contain your runs' OUT folders.")
def review_serve(port, data_dir, document_root):
    """Start the embedded Label Studio on 127.0.0.1 (telemetry off) and print how to log in."""
    import signal

    from duplexcorpus.review.labelstudio import TOKEN_FILE
    from duplexcorpus.review.server import start, stop, stored_credentials, wait_ready

    def on_signal(signum, _frame):  # SIGTERM (and SIGINT) unwind to the `finally` below
        raise SystemExit(128 + signum)

    creds = stored_credentials()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        proc = start(port, Path(data_dir).expanduser(), Path(document_root).resolve(), creds)
    except FileNotFoundError as err:  # no Label Studio venv
        raise click.ClickException(str(err)) from None
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        click.echo(f"Label Studio: {url}   login: {creds['DUPLEXCORPUS_LS_USER']} (password and API token in {TOKEN_FILE}, mode 0600)")
        click.echo(f"export DUPLEXCORPUS_LS_URL={url} DUPLEXCORPUS_LS_DOCUMENT_ROOT={Path(document_root).resolve()}")
        click.echo("Ctrl-C (or SIGTERM) stops it.")
        code = proc.wait()
        if code:
            raise click.ClickException(f"Label Studio stopped with exit code {code}; its log: "
                                       f"{Path(data_dir).expanduser() / 'server.log'}")
    finally:
        stop(proc)


@main.group()
def export() -> None:
    """Write a finished run (OUT) in another tool's format; reads OUT only, never re-runs a stage."""


def _export_options(command):
    """OUT, --to and --split, shared by every export."""
    command = click.option("--split", type=click.Choice(["train", "valid", "test"]), default=None,
                           help="Only this split.")(command)
    command = click.option("--to", "to", required=True, type=click.Path(), help="Destination folder.")(command)
    return click.argument("out", type=click.Path(exists=True))(command)


def _run_export(export_fn, *args) -> None:
    from duplexcorpus.exports.corpus import ExportError

    try:
        click.echo(json.dumps(export_fn(*args)))
    except ExportError as err:
        raise click.ClickException(str(err)) from None


@export.command("moshi")
@_export_options
@click.option("--assistant-channel", type=click.IntRange(0, 1), default=0, show_default=True,
              help="The channel that plays Moshi (left, SPEAKER_MAIN); the other is the user.")
def export_moshi_cmd(out, to, split, assistant_channel):
    """moshi-finetune layout: stereo wav + alignments json per conversation, manifest.jsonl."""
    from duplexcorpus.exports.moshi import export_moshi

    _run_export(export_moshi, Path(out), Path(to), assistant_channel, split)


@export.command("lhotse")
@_export_options
@click.option("--copy-audio", is_flag=True, help="Copy each recording's FLAC into DIR/audio/ (default: the "
                                                 "manifests point at the audio inside OUT).")
def export_lhotse_cmd(out, to, split, copy_audio):
    """lhotse RecordingSet + SupervisionSet (one per IPU: channel, speaker, language, text, word alignment)."""
    from duplexcorpus.exports.lhotse import export_lhotse

    _run_export(export_lhotse, Path(out), Path(to), split, copy_audio)


@export.command("rttm")
@_export_options
def export_rttm_cmd(out, to, split):
    """One RTTM per recording (a SPEAKER line per IPU) and its UEM, for diarization scoring."""
    from duplexcorpus.exports.rttm import export_rttm

    _run_export(export_rttm, Path(out), Path(to), split)


@export.command("textgrid")
@_export_options
def export_textgrid_cmd(out, to, split):
    """One Praat TextGrid per recording: IPUs and words per speaker, a tier per event type."""
    from duplexcorpus.exports.textgrid import export_textgrid

    _run_export(export_textgrid, Path(out), Path(to), split)


if __name__ == "__main__":
    main()
