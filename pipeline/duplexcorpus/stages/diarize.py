"""Diarization: who speaks when on a channel that carries more than one speaker.

Which channels: a channel the metadata says carries several speakers (`speakers` > 1 in metadata.csv
or the manifest), and the channel of a one-channel recording (a mono file, or a stereo file whose
two channels were identical and were collapsed to one by ingest) unless metadata says it carries
one. Any other channel of a multi-channel recording is taken to carry one speaker and is left alone.
A declared count bounds the speaker count (min = max = count); else `min_speakers`/`max_speakers`.
A recording with nothing to diarize (or `enabled: false`) passes through: its IPU
segments are written unchanged, so downstream reads one output either way.

On a diarized channel (diarize/pipeline.py: pyannote.audio 4's SpeakerDiarization, by default with
the embedded segmentation-3.0 + CAM++ models):
1. the channel's 16 kHz analysis signal is diarized (speaker count within min/max_speakers);
2. each IPU takes, frame by frame (10 ms), the speaker active there (where several are, the one
   already speaking keeps it; where none is, the nearest); it is split where the speaker changes,
   pieces shorter than `min_piece` joining a neighbour;
3. pieces carry recording-local speakers `<recording>_ch<N>_spk<K>` (K in order of first speech),
   or the names metadata gives the channel (`speaker_id` `A;B`, in the order they first speak;
   `speaker_source` in the attributes says which); when only one speaker is found the channel keeps
   its own speaker id (nothing changes but the attributes). Overlapped speech inside a piece (another diarized speaker active at the same time)
   is listed in `attributes.overlap` as [start, end, speaker], and (`overlapped_segments`) the other
   speaker's run there of at least `min_piece` is a segment of its own with `attributes.overlapped`
   (a backchannel under the talker, an interruption's first words), so that a shared channel gets
   the overlaps and backchannels two channels would; ASR skips it (its words are in the piece above).
The raw diarization is kept in `turns.rttm` and `diarization.json`.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np

from duplexcorpus.records import Recording, Segment, load_segments, record_dicts
from duplexcorpus.stages.base import Output, Resources, Stage, WorkItem
from duplexcorpus.stages.decrosstalk import DecrosstalkStage
from duplexcorpus.stages.ipus import IpuStage, runs
from duplexcorpus.storage import write_json

HOP = 0.01  # s, the grid on which IPUs are labelled


def channels_to_diarize(rec: Recording) -> list[int]:
    """The rule (see the module docstring): channels declared shared, and a one-channel recording's
    channel unless declared to carry one speaker."""
    default = 2 if rec.num_channels == 1 else 1
    return [c.channel for c in rec.channels if (c.speakers or default) > 1]


def speaker_bounds(declared: int | None, min_speakers: int, max_speakers: int) -> tuple[int | None, int | None]:
    """(min, max) speakers for the diarizer: the declared count when metadata gives one."""
    if declared and declared > 1:
        return declared, declared
    return min_speakers or None, max_speakers or None


def speaker_names(recording_id: str, channel: int, found: list[int], declared: list[str]) -> dict[int, str]:
    """Diarized cluster -> speaker id. `found` in order of first speech; the first clusters take the
    declared names (metadata's `A;B`), the rest recording-local labels."""
    return {k: declared[i] if i < len(declared) else f"{recording_id}_ch{channel}_spk{k}"
            for i, k in enumerate(found)}


def label_ipu(start: float, end: float, turns: list[tuple[float, float, int]], min_piece: float) -> list[tuple[float, float, int]]:
    """Split [start, end) into (start, end, speaker) pieces following the diarization turns."""
    n = max(1, int(round((end - start) / HOP)))
    t = start + (np.arange(n) + 0.5) * HOP
    speakers = sorted({s for _, _, s in turns})
    if not speakers:
        return [(start, end, -1)]
    active = np.zeros((len(speakers), n), bool)
    for a, b, s in turns:
        active[speakers.index(s)] |= (t >= a) & (t < b)
    label = np.full(n, -1)
    prev = -1
    for i in range(n):
        on = np.flatnonzero(active[:, i])
        if len(on) == 1:
            prev = on[0]
        elif len(on) > 1 and prev not in on:
            # several at once, none of them already speaking: the one speaking longest from here
            prev = max(on, key=lambda k: np.argmin(np.append(active[k, i:], False)))
        label[i] = prev
    if (label < 0).all():  # no turn inside the IPU: the nearest turn's speaker
        mid = (start + end) / 2
        a, b, s = min(turns, key=lambda x: max(x[0] - mid, mid - x[1], 0.0))
        return [(start, end, s)]
    first = np.flatnonzero(label >= 0)[0]
    label[:first] = label[first]  # leading frames before any turn: the first speaker
    pieces = [[s, e, int(label[s])] for s, e in _label_runs(label)]
    # short pieces join the longer neighbour, shortest first
    while len(pieces) > 1:
        lengths = [(e - s) * HOP for s, e, _ in pieces]
        k = int(np.argmin(lengths))
        if lengths[k] >= min_piece:
            break
        if k == 0 or (k < len(pieces) - 1 and lengths[k + 1] > lengths[k - 1]):
            pieces[k + 1][0] = pieces[k][0]
        else:
            pieces[k - 1][1] = pieces[k][1]
        pieces.pop(k)
        merged = [pieces[0]]  # neighbours with the same speaker become one
        for p in pieces[1:]:
            if p[2] == merged[-1][2]:
                merged[-1][1] = p[1]
            else:
                merged.append(p)
        pieces = merged
    out = []
    for s, e, spk in pieces:
        out.append((round(start + s * HOP, 3) if s else start, round(start + e * HOP, 3) if e < n else end,
                    speakers[spk]))
    return out


def _label_runs(label: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(label)) + 1
    bounds = [0, *edges.tolist(), len(label)]
    return list(zip(bounds[:-1], bounds[1:]))


def overlapped_pieces(start: float, end: float, turns: list[tuple[float, float, int]],
                      pieces: list[tuple[float, float, int]], min_piece: float) -> list[tuple[float, float, int]]:
    """Speech of a speaker inside [start, end) where `pieces` (label_ipu) give another speaker the IPU:
    a listener's backchannel under the talker, the opening words of an interruption. Runs of at least
    `min_piece`, as (start, end, speaker). On two channels each would be an IPU of its own channel;
    kept here, the turn-taking rules see the same overlaps and backchannels on a shared channel."""
    n = max(1, int(round((end - start) / HOP)))
    t = start + (np.arange(n) + 0.5) * HOP
    owner = np.full(n, -1)
    for a, b, k in pieces:
        owner[(t >= a) & (t < b)] = k
    out = []
    for k in sorted({s for _, _, s in turns}):
        active = np.zeros(n, bool)
        for a, b, s in turns:
            if s == k:
                active |= (t >= a) & (t < b)
        under = np.concatenate([[False], active & (owner != k), [False]])
        edges = np.flatnonzero(np.diff(under.astype(np.int8)))
        for a, b in zip(edges[::2], edges[1::2]):
            if (b - a) * HOP >= min_piece:
                out.append((round(start + a * HOP, 3), round(start + b * HOP, 3), k))
    return sorted(out)


def overlaps(start: float, end: float, own: int, turns: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """Where another speaker is active inside [start, end) at the same time as `own`."""
    out = []
    mine = [(a, b) for a, b, s in turns if s == own]
    for a, b, s in turns:
        if s == own:
            continue
        for ma, mb in mine:
            lo, hi = max(a, ma, start), min(b, mb, end)
            if hi - lo >= HOP:
                out.append((round(lo, 3), round(hi, 3), s))
    return sorted(out)


def relabel(segments: list[Segment], channel: int, turns: list[tuple[float, float, int]], names: dict[int, str],
            min_piece: float, overlapped: bool = True) -> list[Segment]:
    """The channel's IPUs split and labelled by speaker; other channels' segments untouched. With
    `overlapped`, a speaker's speech under another's piece is a segment of its own too
    (`attributes.overlapped`; ASR leaves it to the piece it lies under, whose audio it shares)."""
    out = []
    for seg in segments:
        if seg.channel != channel:
            out.append(seg)
            continue
        pieces = label_ipu(seg.start, seg.end, turns, min_piece)
        for s, e, spk in overlapped_pieces(seg.start, seg.end, turns, pieces, min_piece) if overlapped else []:
            out.append(dataclasses.replace(
                seg, start=s, end=e, speaker_id=names.get(spk, seg.speaker_id), crosstalk_suppressed=0.0,
                attributes=dict(seg.attributes, diarized=True, overlapped=True)))
        for s, e, spk in pieces:
            share = (e - s) / max(seg.duration, 1e-9)
            attrs = dict(seg.attributes, diarized=True)
            ov = overlaps(s, e, spk, turns)
            if ov:
                attrs["overlap"] = [[a, b, names.get(k, seg.speaker_id)] for a, b, k in ov]
            out.append(dataclasses.replace(
                seg, start=round(s, 3), end=round(e, 3), speaker_id=names.get(spk, seg.speaker_id),
                crosstalk_suppressed=round(seg.crosstalk_suppressed * share, 3), attributes=attrs))
    return out


class DiarizeStage(Stage):
    name = "diarize"
    version = "2"
    config_section = "diarization"
    reads = ("decrosstalk", "ipus")
    DIARIZED = Output("segments.json", read=load_segments,
                      description="the IPUs split and labelled per speaker (unchanged where nothing was diarized)")
    TURNS = Output("turns.rttm", description="the raw diarization (RTTM; empty when nothing was diarized)")
    DIARIZATION = Output("diarization.json", read=lambda p: json.loads(p.read_text()),
                         description="which channels were diarized, their turns and speakers")
    resources = Resources(cpus=1.0)
    uses_model = True

    def setup(self) -> None:
        # the pipeline loads on the first recording that needs it: a corpus of two-channel calls
        # never pays for it
        self.diarizer = None

    def _load(self):
        if getattr(self, "diarizer", None) is None:
            import torch

            from duplexcorpus.diarize.pipeline import Diarizer

            torch.set_num_threads(self.cfg.threads)

            cfg = self.cfg
            kw = self.embedded_options(cfg) if cfg.model == "embedded" else {}
            self.diarizer = Diarizer(cfg.model, device=cfg.device, **kw)
        return self.diarizer

    @staticmethod
    def embedded_options(cfg) -> dict:
        """The `diarization` fields the embedded pipeline takes (diarize/pipeline.embedded_pipeline)."""
        return dict(threshold=cfg.threshold, min_cluster_size=cfg.min_cluster_size, step=cfg.step,
                    batch_size=cfg.batch_size, embedding_max_seconds=cfg.embedding_max_seconds,
                    exclude_overlap=cfg.exclude_overlap, constrained_assignment=cfg.constrained_assignment)

    def process(self, item: WorkItem, out_dir: Path) -> None:
        import soundfile as sf

        rec = item.rec()
        segments = item.read(IpuStage.SEGMENTS)
        cfg = self.cfg
        todo = channels_to_diarize(rec) if cfg.enabled else []
        todo = [c for c in todo if any(s.channel == c for s in segments)]
        report: dict = {"channels": todo, "model": cfg.model if todo else None, "per_channel": {}}
        if not todo:  # pass through, byte for byte
            shutil.copyfile(item.path(IpuStage.SEGMENTS), out_dir / self.DIARIZED.file)
            (out_dir / self.TURNS.file).write_text("")
            write_json(out_dir / self.DIARIZATION.file, report)
            return
        rttm = []
        for c in todo:
            wave, rate = sf.read(str(item.path(DecrosstalkStage.ANALYSIS)), dtype="float32", always_2d=True)
            assert rate == 16000, rate
            info = rec.channels[c]
            raw = self._load().diarize(wave[:, c], *speaker_bounds(info.speakers, cfg.min_speakers, cfg.max_speakers))
            turns = [(t.start, t.end, int(t.speaker)) for t in raw]
            found = sorted({s for _, _, s in turns}, key=lambda k: min(a for a, _, s in turns if s == k))
            declared = info.speaker_names() if len(info.speaker_names()) > 1 else []
            names = speaker_names(rec.recording_id, c, found, declared) if len(found) > 1 \
                else {k: rec.speaker(c) for k in found}
            segments = relabel(segments, c, turns, names, cfg.min_piece, cfg.overlapped_segments)
            rttm += [f"SPEAKER {rec.recording_id} {c + 1} {a:.3f} {b - a:.3f} <NA> <NA> {names[k]} <NA> <NA>\n"
                     for a, b, k in turns]
            report["per_channel"][str(c)] = {
                "speakers": [names[k] for k in found],
                "declared_speakers": info.speakers, "names_from": "metadata" if declared else "diarization",
                "turns": [[a, b, names[k]] for a, b, k in turns],
                "overlap_s": round(sum(len(s.attributes.get("overlap", [])) and not s.attributes.get("overlapped") and
                                       sum(o[1] - o[0] for o in s.attributes["overlap"]) for s in segments
                                       if s.channel == c), 3),
            }
        segments.sort(key=lambda s: (s.channel, s.start))
        write_json(out_dir / self.DIARIZED.file, record_dicts(segments))
        (out_dir / self.TURNS.file).write_text("".join(rttm))
        write_json(out_dir / self.DIARIZATION.file, report)
