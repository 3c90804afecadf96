"""The Label Studio labeling config for N-channel review (annotation_ui/ holds the 2-channel copy).

Label Studio draws `splitchannels` audio as one waveform per channel, but its regions are not per
channel (they come back with channel 0), so the speaker travels in the label: Speech_A, Speech_B...
Event labels (Backchannel, Laughter, ...) are added to a speaker's region (labels are multi-choice);
an event label without a speaker label is rejected at pull, except Overlap / Noise / Crosstalk.
"""
from __future__ import annotations


EVENT_LABELS = ("Backchannel", "Laughter", "Filler", "Overlap", "Interruption", "Noise", "Crosstalk")
CHANNEL_FREE = ("Overlap", "Noise", "Crosstalk")  # labels that need no speaker
VERDICTS = ("accept", "fixed", "reject")
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def speaker_label(channel: int) -> str:
    return f"Speech_{chr(ord('A') + channel)}"


def channel_of(label: str) -> int | None:
    if label.startswith("Speech_") and len(label) == 8:
        return ord(label[-1]) - ord("A")
    return None


def labeling_config(channels: int = 2) -> str:
    speakers = "\n".join(f'    <Label value="{speaker_label(c)}" background="{COLOURS[c % len(COLOURS)]}"/>'
                         for c in range(channels))
    events = "\n".join(f'    <Label value="{e}" background="#999999"/>' for e in EVENT_LABELS)
    verdicts = "\n".join(f'    <Choice value="{v}"/>' for v in VERDICTS)
    # one transcript per region (maxSubmissions=1): the predicted text is corrected in place with its
    # pencil, not followed by a second line; a region drawn by hand still gets an empty input box
    return f'''<View>
  <Header value="Why this window was sent to you"/>
  <Text name="reasons" value="$reasons"/>
  <Text name="speakers" value="$speakers"/>
  <Audio name="audio" value="$audio" splitchannels="true" hotkey="space"/>
  <Labels name="label" toName="audio" choice="multiple">
{speakers}
{events}
  </Labels>
  <TextArea name="transcript" toName="audio" perRegion="true" editable="true" maxSubmissions="1" rows="2"
            placeholder="What was said in this region (characters for Mandarin)"/>
  <Header value="Verdict for the whole window"/>
  <Choices name="verdict" toName="audio" choice="single" required="true">
{verdicts}
  </Choices>
</View>
'''
