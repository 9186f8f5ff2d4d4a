import json
import os
import pickle

import pytest
import torch

from nin.errors import NinError
from nin.fast import optimize
from nin.inference import load_trained
from nin.models import build_model
from nin.files import atomic_write_text, load_checkpoint, load_weights, save_checkpoint, save_weights


def test_weights_round_trip_gives_same_outputs(tmp_path):
    # optimized as load_trained's model is, so that the round trip is compared bit for bit (the plain model's
    # unfused convolutions on 2 images round differently, 1e-8 apart)
    model = optimize(build_model("nin-mnist")).eval()
    meta = {"preset": "nin-mnist", "dataset": "mnist", "model_config": model.config.to_dict(),
            "mean": [0.1307], "std": [0.3081], "class_names": [str(i) for i in range(10)]}
    save_weights(tmp_path / "weights.safetensors", model.state_dict(), meta)
    trained = load_trained(tmp_path)
    assert trained.meta == json.loads(json.dumps(meta))   # tuples come back as lists
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(trained.model(x), model(x), rtol=0, atol=0)


def test_weights_file_truncated(tmp_path):
    model = build_model("nin-mnist")
    path = tmp_path / "w.safetensors"
    save_weights(path, model.state_dict(), {"model_config": model.config.to_dict()})
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(NinError, match="not a nin weights file"):
        load_weights(path)


def test_checkpoint_round_trip(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "epoch": 2, "history": [{"a": 1.5}], "rng": torch.get_rng_state()}
    save_checkpoint(tmp_path / "c.pt", state)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["epoch"] == 2 and loaded["history"] == [{"a": 1.5}]
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_checkpoint_that_runs_code_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": _Exploit()}, f)
    with pytest.raises(NinError, match="not a valid nin checkpoint"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_truncated_checkpoint(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"w": torch.zeros(1000)})
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "c.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(NinError, match="truncated, corrupt"):
        load_checkpoint(tmp_path / "c.pt")


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "one")
    atomic_write_text(tmp_path / "a.txt", "two")
    assert (tmp_path / "a.txt").read_text() == "two"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_unwritable_folder_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NinError, match="cannot write there"):
        atomic_write_text(blocker / "sub" / "a.txt", "x")
