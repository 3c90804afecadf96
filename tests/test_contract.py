import json

import pyarrow as pa
import pytest

from duplexcorpus import contract


@pytest.mark.parametrize("table", contract.TABLES)
def test_schemas_load_and_carry_version(table):
    schema = contract.table_schema(table)
    version = schema.metadata[b"duplexcorpus.schema_version"].decode()
    spec = json.loads(contract.read_text(*contract.SCHEMA_DIR, f"{table}.arrow.json"))
    assert version == spec["version"] and version.split(".")[0] == contract.SCHEMA_VERSION.split(".")[0]
    assert tuple(map(int, version.split("."))) >= (1, 1, 0)


def test_events_name_speaker_apart_from_channel():
    names = contract.table_schema("events").names
    assert names.index("speaker_id") == names.index("channel") + 1


def test_to_table_rejects_missing_column():
    with pytest.raises(contract.ContractError, match="missing"):
        contract.to_table("quarantine", [{"input": "x", "stage": "ingest", "reason_code": "empty", "reason": "r"}])


def test_validate_table_rejects_nulls_in_required_column():
    schema = contract.table_schema("quarantine")
    data = pa.table({n: pa.array([None], type=schema.field(n).type) for n in schema.names})
    with pytest.raises(contract.ContractError, match="nulls"):
        contract.validate_table("quarantine", data)


def test_sample_schema_rejects_unknown_event_type():
    with pytest.raises(contract.ContractError, match="events"):
        contract.validate_sample({"schema_version": "1.0.0", "recording_id": "r",
                                  "window": {"index": 0, "count": 1, "start": 0, "end": 1},
                                  "sample_rate": 24000, "num_channels": 2, "split": "train", "channels": [],
                                  "metadata": {"language": None, "scenario": None, "environment": None,
                                               "device": None, "source_sha256": "x"},
                                  "segments": [], "events": [{"event_id": "e", "type": "sneeze", "channel": 0,
                                                              "start": 0, "end": 1, "confidence": 1,
                                                              "source": "rules", "attributes": {}}],
                                  "frame_labels": {"frame_rate": 12.5, "names": ["speech"], "shape": [2, 1, 13]}})


def test_every_artifact_of_a_run_matches_the_contract(sample_run):
    from duplexcorpus.validate import validate_output

    assert validate_output(sample_run.out) == []
    stats = json.loads((sample_run.out / "stats.json").read_text())
    assert stats["recordings"] == sample_run.recordings
