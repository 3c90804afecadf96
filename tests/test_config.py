import pytest
import yaml

from duplexcorpus.config import Workflow, WorkflowError, load_workflow, to_dict
from tests.conftest import ROOT


def test_default_workflow_file_equals_code_defaults():
    on_disk = yaml.safe_load((ROOT / "workflows" / "default.yaml").read_text())
    on_disk.pop("version")
    assert on_disk == to_dict(Workflow())


@pytest.mark.parametrize("name", ["default.yaml", "samples.yaml", "cluster.yaml"])
def test_shipped_workflows_load(name):
    assert isinstance(load_workflow(ROOT / "workflows" / name), Workflow)


def test_unknown_key_is_an_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("vad:\n  windw: 3\n")
    with pytest.raises(WorkflowError, match="windw"):
        load_workflow(bad)


def test_type_errors_are_reported():
    with pytest.raises(WorkflowError, match="expected a number"):
        load_workflow(None, {"ipu.bridge": "long"})


def test_overrides_apply():
    wf = load_workflow(None, {"ipu.bridge": 0.3, "split.pinned": {"a": "test"}})
    assert wf.ipu.bridge == 0.3 and wf.split.pinned == {"a": "test"}


def test_resources_per_stage():
    from duplexcorpus.runner import check_resources, resources_for
    from duplexcorpus.stages.asr import AsrStage
    from duplexcorpus.stages.vad import VadStage

    wf = load_workflow(None, {"ray.resources": {"vad": {"gpus": 0.25, "actors": 8}}})
    assert (resources_for(VadStage, wf).gpus, resources_for(VadStage, wf).actors) == (0.25, 8)
    assert (resources_for(AsrStage, wf).gpus, resources_for(AsrStage, wf).actors) == (0.0, 1)
    with pytest.raises(WorkflowError, match="unknown key"):
        load_workflow(None, {"ray.resources": {"vad": {"gpu": 1}}})
    with pytest.raises(WorkflowError, match="unknown stage"):
        check_resources(load_workflow(None, {"ray.resources": {"vda": {"gpus": 1}}}))


def test_model_stages_stream_together_only_when_the_cluster_holds_their_actors():
    """Ray Data starts one actor per model stage up front and an idle actor keeps its CPU: on a
    cluster smaller than that the stages must run one model stage at a time (a two-node, 1-CPU-per-node
    cluster hung otherwise)."""
    from duplexcorpus.runner import fits_at_once
    from duplexcorpus.stages import STAGES

    wf = load_workflow(None, {})
    model_cpus = sum(s.resources.cpus for s in STAGES if s.uses_model)
    assert model_cpus >= 3  # vad, diarize, asr, nonverbal
    assert not fits_at_once(STAGES, wf, {"CPU": 2.0})
    assert not fits_at_once(STAGES, wf, {"CPU": model_cpus})  # no CPU left for the task stages
    assert fits_at_once(STAGES, wf, {"CPU": model_cpus + 1})
    gpu = load_workflow(None, {"ray.resources": {"asr": {"gpus": 1.0}}})
    assert not fits_at_once(STAGES, gpu, {"CPU": 64.0})  # no GPU in the cluster
    assert fits_at_once(STAGES, gpu, {"CPU": 64.0, "GPU": 1.0})
