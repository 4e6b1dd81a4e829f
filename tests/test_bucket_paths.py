"""gs:// paths (issue 16, part 10), without a network: which paths go to orbax / TFDS as URLs,
and what is refused with a message."""
import pytest

from bsgap import bucket_paths
from bsgap.checkpoint import Checkpointer
from bsgap.data import array_cache, catalog
from bsgap.restore import RunNotFoundError, load_run
from bsgap.workdir import WorkdirError, refuse_url_workdir
from launch import runner

MOUNTS = {"BSGAP_GCS_MOUNTS": "/mnt/bsgap=gs://my-bucket/bsgap, /data=gs://other/"}


def test_directories_under_a_mount_become_its_bucket_urls():
    url = bucket_paths.storage_url
    assert url("/mnt/bsgap/runs/s/bs16/checkpoints", MOUNTS) == \
        "gs://my-bucket/bsgap/runs/s/bs16/checkpoints"
    assert url("/mnt/bsgap", MOUNTS) == "gs://my-bucket/bsgap"
    assert url("/data/x/../y", MOUNTS) == "gs://other/y"
    assert url("/mnt/bsgap2/runs", MOUNTS) == "/mnt/bsgap2/runs"      # not under the mount
    assert url("/mnt/bsgap/runs", {}) == "/mnt/bsgap/runs"
    assert url("gs://b/c", MOUNTS) == "gs://b/c"
    for bad in ("/mnt=/x", "mnt=gs://b", "/mnt"):
        with pytest.raises(ValueError, match="MOUNT=gs://BUCKET"):
            url("/mnt/x", {"BSGAP_GCS_MOUNTS": bad})


def test_the_checkpointer_hands_orbax_the_bucket_url(tmp_path, monkeypatch):
    # Only the path is checked: a Checkpointer on tmp_path mapped to gs:// would need a network.
    monkeypatch.setenv("BSGAP_GCS_MOUNTS", f"{tmp_path}/elsewhere=gs://b/p")
    checkpointer = Checkpointer(str(tmp_path / "run"))
    assert checkpointer.directory == str(tmp_path / "run" / "checkpoints")
    checkpointer.close()
    monkeypatch.setattr(bucket_paths, "mounts", lambda environ=None: [(str(tmp_path), "gs://b/p")])
    monkeypatch.setattr(Checkpointer, "_open", lambda self: None)
    assert Checkpointer(str(tmp_path / "run")).directory == "gs://b/p/run/checkpoints"


def test_url_workdirs_are_refused_with_what_to_do():
    with pytest.raises(WorkdirError, match="gs://b/run is a URL.*Mount the bucket"):
        refuse_url_workdir("gs://b/run")
    refuse_url_workdir("/mnt/bsgap/runs/x")
    with pytest.raises(RunNotFoundError, match="local or mounted path"):
        load_run("gs://b/run")


def test_a_gs_data_dir_gets_no_local_filesystem_calls(monkeypatch):
    calls = []
    for name in ("makedirs", "walk"):
        monkeypatch.setattr(f"os.{name}", lambda *a, _n=name, **k: calls.append(_n))
    assert catalog._expand("gs://b/tfds") == "gs://b/tfds"
    assert catalog._expand("~/tfds").startswith("/")
    with catalog._preparation_lock("gs://b/tfds", "mnist1d/small"):   # no flock, no makedirs
        pass
    assert runner.dataset_prepared("mnist1d/small", "gs://b/tfds")    # TFDS's to read
    assert calls == []

    class Builder:
        data_dir = "gs://b/tfds/mnist1d/small/1.0.0"
    assert not array_cache._cacheable(Builder, "train")
    with pytest.raises(catalog.DataError, match="manual_dir='gs://b/images' is a URL"):
        catalog.image_folder("gs://b/images", "train", "test")
