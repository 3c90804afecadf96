"""Words from speech: the pieces the ASR stage (`stages/asr.py`) is made of, and review reuses.

- `plan`    which audio goes to Whisper as what: `ClipPlan`, `group_ipus` (IPUs packed into clips),
            `utterance_clip` (a given text at its real position), `clip_audio` (a plan's audio,
            outside the IPUs zeroed, and the channel's noise floor);
- `engine`  the Whisper engine (faster-whisper's model class, CTranslate2): batched
            recognition and cross-attention word alignment on one encoder pass; model resolution
            and the sha256 pins of the embedded Whisper base; `load_engine` picks the engine `asr.model` names;
- `sherpa`  Paraformer-zh and SenseVoice-Small on sherpa-onnx (`paraformer:<folder>`,
            `sensevoice:<folder>`): the Whisper engine's interface, words under the same contract;
- `engines` one engine per language (`asr.engines`): `EngineRouter` splits each batch by the clips'
            language (detected first where unknown), spec validation for the workflow;
- `ctc`     the wav2vec2/CTC aligner (`whisperx.align` on a local folder, one sentence per clip);
- `aligner` the text aligner: text + audio spans -> timed words in recording time (CTC where
            configured, else cross-attention; then `timing`); the stage's every clip and review's
            annotator text (`review/realign.py`) go through it;
- `timing`  pure functions on words and energy arrays: keep words inside IPUs, snap them to the
            energy envelope, extend ends, move joins to energy dips, interpolate what is unplaced;
- `gates`   pure decisions about what a recognised clip drops (no speech, hallucination phrase,
            repetition loop) and why.
"""
