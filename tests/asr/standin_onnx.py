"""Stand-in ONNX models for the sherpa-onnx engines (`duplexcorpus/asr/sherpa.py`): graphs with the
inputs, outputs and metadata of the real Paraformer-zh and SenseVoice-Small exports that sherpa-onnx
loads, tiny random weights inside, and a tokens.txt. STAND-INS: they exercise the runtime and the
adapter's code path (feature extraction, batching, decoding, timestamps, token handling) and say
nothing about accuracy; their words are random characters.

- Paraformer (`write_standin_paraformer`): inputs `speech` (N, T, 560: 80-bin fbank stacked by LFR 7/6)
  and `speech_lengths` (N,); outputs `logits` (N, U, V), `token_num` (N,), `us_alphas` (N, T) and
  `us_cif_peak` (N, 3T), the CIF firing positions sherpa-onnx turns into one time per token. The
  stand-in fires one token every `TOKEN_FRAMES` LFR frames (240 ms), as CIF fires once per character.
- SenseVoice (`write_standin_sensevoice`): inputs `x` (N, T, 560), `x_length`, `language`, `text_norm`
  (N,); output `logits` (N, T + 4, V): four prefix frames (language, emotion, event, text
  normalisation) then CTC frames. The stand-in emits a token every `TOKEN_FRAMES` frames, blank between.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

LFR_DIM = 80 * 7
TOKEN_FRAMES = 4
HAN = "我你他们是的了在有这个不人好想听歌曲时间只是因为首先对嗯啊呃中国北京上海今天明天说话"
# Latin pieces: Paraformer's "xx@@" continues into the next piece; SenseVoice's "▁xx" starts a word
PARAFORMER_LATIN = ["let", "it", "go", "app@@", "le", "pay"]
SENSEVOICE_LATIN = ["▁let", "▁it", "▁go", "▁app", "le", "▁pay"]
SENSEVOICE_SPECIAL = ["<unk>", "<s>", "</s>", "<|zh|>", "<|en|>", "<|yue|>", "<|ja|>", "<|ko|>",
                      "<|nospeech|>", "<|NEUTRAL|>", "<|Speech|>", "<|woitn|>", "<|withitn|>"]
# the language ids the real export's metadata gives its `language` input
SENSEVOICE_LANG_IDS = {"auto": 0, "zh": 3, "en": 4, "yue": 7, "ja": 11, "ko": 12}


def _write_tokens(path: Path, tokens: list[str]) -> None:
    path.write_text("".join(f"{t} {i}\n" for i, t in enumerate(tokens)), encoding="utf-8")


def _add_metadata(model_path: Path, meta: dict) -> None:
    import onnx

    model = onnx.load(str(model_path))
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, str(v)
    onnx.save(model, str(model_path))


def _cmvn() -> dict:
    # real exports carry the training set's fbank statistics; the stand-in's are plausible values
    rng = np.random.default_rng(0)
    neg_mean = -(rng.normal(10.0, 2.0, LFR_DIM))
    inv_std = 1.0 / rng.uniform(2.0, 4.0, LFR_DIM)
    return dict(neg_mean=",".join(f"{x:.4f}" for x in neg_mean), inv_stddev=",".join(f"{x:.4f}" for x in inv_std))


def _spread(head):
    """Larger random output weights and no bias: the argmax follows the audio, not one token."""
    import torch

    with torch.no_grad():
        head.weight.normal_(0.0, 5.0)
        head.bias.zero_()
    return head


def write_standin_paraformer(folder: Path, seed: int = 0) -> Path:
    """A stand-in Paraformer-zh export in `folder` (model.int8.onnx, tokens.txt); returns the folder."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<blank>", "<s>", "</s>"] + list(HAN) + PARAFORMER_LATIN + ["<unk>"]
    eos = 2
    vocab = len(tokens)

    class StandinParaformer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(seed)
            self.encoder = torch.nn.Linear(LFR_DIM, 32)  # random weights: the stand-in's "encoder"
            self.head = _spread(torch.nn.Linear(32, vocab))
            self.alpha = torch.nn.Linear(32, 1)
            special = torch.zeros(vocab)
            special[[0, 1, 2, vocab - 1]] = -1e4  # a token is never blank/sos/eos/unk ...
            self.register_buffer("special", special)
            eos_row = torch.full((vocab,), -1e4)
            eos_row[eos] = 1e4  # ... until the utterance's tokens are done: then eos
            self.register_buffer("eos_row", eos_row)

        def forward(self, speech, speech_lengths):
            h = torch.tanh(self.encoder(speech))  # (N, T, 32)
            n, t, _ = h.shape
            u_max = (t - 1) // TOKEN_FRAMES
            token_num = (speech_lengths - 1).div(TOKEN_FRAMES, rounding_mode="floor")  # one per 240 ms
            pooled = h[:, : u_max * TOKEN_FRAMES].reshape(n, u_max, TOKEN_FRAMES, 32).mean(2)
            logits = self.head(pooled) + self.special
            done = torch.arange(u_max).unsqueeze(0) >= token_num.unsqueeze(1)  # (N, U)
            logits = torch.where(done.unsqueeze(-1), self.eos_row, logits)
            alphas = torch.sigmoid(self.alpha(h)).squeeze(-1)
            # CIF fires at each token's frame (upsampled x3), and once more after the last token
            pos = torch.arange(3 * t).unsqueeze(0)
            fired = (pos % (3 * TOKEN_FRAMES) == 0) & (pos <= 3 * TOKEN_FRAMES * token_num.unsqueeze(1))
            return logits.log_softmax(-1), token_num, alphas, fired.float()

    path = folder / "model.int8.onnx"
    x = torch.randn(2, 50, LFR_DIM)
    lens = torch.tensor([50, 30], dtype=torch.int32)
    torch.onnx.export(StandinParaformer(), (x, lens), str(path), dynamo=False, opset_version=17,
                      input_names=["speech", "speech_lengths"],
                      output_names=["logits", "token_num", "us_alphas", "us_cif_peak"],
                      dynamic_axes={"speech": {0: "N", 1: "T"}, "speech_lengths": {0: "N"},
                                    "logits": {0: "N", 1: "U"}, "token_num": {0: "N"},
                                    "us_alphas": {0: "N", 1: "T"}, "us_cif_peak": {0: "N", 1: "T3"}})
    _add_metadata(path, dict(vocab_size=vocab, lfr_window_size=7, lfr_window_shift=6,
                             comment="STAND-IN Paraformer (random weights, tests only)", **_cmvn()))
    _write_tokens(folder / "tokens.txt", tokens)
    return folder


def write_standin_sensevoice(folder: Path, seed: int = 0) -> Path:
    """A stand-in SenseVoice-Small export in `folder` (model.int8.onnx, tokens.txt); returns the folder."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokens = SENSEVOICE_SPECIAL + list(HAN) + SENSEVOICE_LATIN
    vocab = len(tokens)
    n_special = len(SENSEVOICE_SPECIAL)
    # `language` input id -> the language token the real model writes first (auto: zh)
    lang_token = torch.zeros(13, dtype=torch.long)
    for lang, idx in SENSEVOICE_LANG_IDS.items():
        lang_token[idx] = tokens.index(f"<|{lang if lang != 'auto' else 'zh'}|>")

    class StandinSenseVoice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(seed)
            self.encoder = torch.nn.Linear(LFR_DIM, 32)
            self.head = _spread(torch.nn.Linear(32, vocab))
            mask = torch.zeros(vocab)
            mask[:n_special] = -1e4  # CTC frames write characters, never the special tokens
            self.register_buffer("mask", mask)
            self.register_buffer("lang_token", lang_token)
            self.register_buffer("eye", torch.eye(vocab) * 1e4)

        def forward(self, x, x_length, language, text_norm):
            n, t, _ = x.shape
            logits = self.head(torch.tanh(self.encoder(x))) + self.mask
            blank = torch.full((vocab,), -1e4)
            blank[0] = 1e4
            frame = torch.arange(t).unsqueeze(0)
            emit = (frame % TOKEN_FRAMES == 1) & (frame < x_length.unsqueeze(1))
            logits = torch.where(emit.unsqueeze(-1), logits, blank)
            prefix_ids = torch.stack([self.lang_token[language.long()],
                                      torch.full_like(language.long(), tokens.index("<|NEUTRAL|>")),
                                      torch.full_like(language.long(), tokens.index("<|Speech|>")),
                                      torch.where(text_norm == 14, tokens.index("<|withitn|>"),
                                                  tokens.index("<|woitn|>")).long()], 1)
            prefix = self.eye[prefix_ids]  # (N, 4, V)
            return torch.cat([prefix, logits], 1).log_softmax(-1)

    path = folder / "model.int8.onnx"
    args = (torch.randn(2, 40, LFR_DIM), torch.tensor([40, 25], dtype=torch.int32),
            torch.tensor([0, 3], dtype=torch.int32), torch.tensor([15, 15], dtype=torch.int32))
    torch.onnx.export(StandinSenseVoice(), args, str(path), dynamo=False, opset_version=17,
                      input_names=["x", "x_length", "language", "text_norm"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N", 1: "T"}, "x_length": {0: "N"}, "language": {0: "N"},
                                    "text_norm": {0: "N"}, "logits": {0: "N", 1: "T4"}})
    _add_metadata(path, dict(vocab_size=vocab, blank_id=0, lfr_window_size=7, lfr_window_shift=6,
                             normalize_samples=0, with_itn=14, without_itn=15,
                             **{f"lang_{k}": v for k, v in SENSEVOICE_LANG_IDS.items()},
                             comment="STAND-IN SenseVoice (random weights, tests only)", **_cmvn()))
    _write_tokens(folder / "tokens.txt", tokens)
    return folder
