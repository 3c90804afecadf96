"""Humans in the loop: route risky regions to Label Studio and merge the corrections back.

routing.py (risk per segment, task windows within a budget) -> tasks.py (audio windows, task data,
predictions) -> labelstudio.py (the server, via label-studio-sdk 2.x) -> merge.py (validate
annotations, human segments/words/events, agreement, audit) -> overlay.py (human labels win inside
reviewed windows when events, samples and tables are rebuilt).
"""
