"""Exports of a finished run (OUT) to other tools' formats, one module per format: moshi
(moshi-finetune), lhotse (manifests), rttm (diarization), textgrid (Praat). They read OUT through
`corpus.export_recordings` (RunFolder underneath) and never re-run a stage."""
