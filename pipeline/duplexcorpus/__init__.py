"""duplexcorpus: conversational recordings in, full-duplex training corpora out."""
