"""Tests of the command line ``python -m kexue_nb.diffusion train|sample``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from kexue_nb.diffusion.__main__ import build_parser, load_data, main, make_schedule
from kexue_nb.diffusion.checkpoint import CHECKPOINT_NAME, load_checkpoint
from kexue_nb.diffusion.classifier import ClassifierTrainer
from kexue_nb.diffusion.schedule import Schedule

TINY = ["--T", "20", "--width", "16", "--depth", "1", "--batch-size", "32", "--n", "300",
        "--log-every", "5", "--warmup", "2", "--no-progress", "--device", "cpu"]


def test_module_help_lists_both_commands():
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, "-m", "kexue_nb.diffusion", "--help"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "train" in out.stdout and "sample" in out.stdout


def test_train_help_documents_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in ("--data", "--model", "--steps", "--batch-size", "--lr", "--device",
                   "--precision", "--compile", "--out", "--resume", "swiss-roll", "digits"):
        assert option in text


def test_num_points_is_an_alias_of_n():
    parser = build_parser()
    assert parser.parse_args(["train", "--out", "o", "--num-points", "77"]).n == 77
    assert parser.parse_args(["train", "--out", "o", "--n", "78"]).n == 78
    assert parser.parse_args(["train", "--out", "o"]).dist_timeout == 600.0


def test_load_data_and_schedule():
    x, y = load_data("mixture", 100, seed=0)
    assert x.shape == (100, 2) and y.shape == (100,) and int(y.max()) <= 7
    x2, _ = load_data("mixture", 100, seed=0)
    assert torch.equal(x, x2)
    assert load_data("moons", 50, 1)[1] is None
    torch.testing.assert_close(make_schedule("su", 10).alpha_bar, Schedule.su(10).alpha_bar)
    with pytest.raises(ValueError, match="`data` must be one of"):
        load_data("circles", 10, 0)
    with pytest.raises(ValueError, match="`schedule` must be one of"):
        make_schedule("quadratic", 10)


def test_train_resume_and_sample_with_guidance(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", "mixture", "--conditional", "--steps", "10",
            "--checkpoint-every", "5", "--out", str(out), *TINY]
    assert main(args) == 0
    assert load_checkpoint(out / CHECKPOINT_NAME).step == 10
    # resume a longer run from the checkpoint
    assert main([*args[:5], "20", *args[6:], "--resume"]) == 0
    ck = load_checkpoint(out / CHECKPOINT_NAME)
    assert ck.step == 20 and ck.model_config["num_classes"] == 8
    loss = np.load(out / "loss.npz")
    assert loss["steps"].tolist() == [5, 10, 15, 20] and np.isfinite(loss["loss"]).all()
    assert "trained 10 steps (resumed at step 10, now at 20)" in capsys.readouterr().out

    assert main(["sample", "--checkpoint", str(out), "--n", "64", "--sampler", "ddim",
                 "--steps", "5", "--label", "2", "--w", "1.5", "--no-progress",
                 "--device", "cpu"]) == 0
    s = np.load(out / "samples.npz")
    assert s["x"].shape == (64, 2) and np.isfinite(s["x"]).all() and (s["y"] == 2).all()
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    folder = tmp_path / "ddpm"
    assert main(["sample", "--checkpoint", str(out / CHECKPOINT_NAME), "--n", "16",
                 "--sampler", "ddpm", "--variance", "posterior", "--seed", "3", "--out",
                 str(folder), "--no-progress", "--device", "cpu"]) == 0
    a = np.load(folder / "samples.npz")["x"]
    again = ["sample", "--checkpoint", str(out), "--n", "16", "--sampler", "ddpm",
             "--variance", "posterior", "--seed", "3", "--out", str(folder),
             "--no-progress", "--device", "cpu"]
    before = (folder / "samples.npz").stat().st_mtime_ns
    with pytest.raises(SystemExit) as refused:  # samples of an earlier call are kept
        main(again)
    assert refused.value.code == 2 and (folder / "samples.npz").stat().st_mtime_ns == before
    assert "pass --overwrite" in capsys.readouterr().err
    assert main([*again, "--overwrite"]) == 0
    np.testing.assert_array_equal(np.load(folder / "samples.npz")["x"], a)  # seeded


def test_digits_unet_train_and_grid(tmp_path):
    out = tmp_path / "digits"
    assert main(["train", "--data", "digits", "--steps", "2", "--batch-size", "8", "--T", "10",
                 "--width", "8", "--out", str(out), "--no-progress", "--device", "cpu",
                 "--checkpoint-every", "0"]) == 0
    assert load_checkpoint(out / CHECKPOINT_NAME).model_name == "UNet8"
    assert main(["sample", "--checkpoint", str(out), "--n", "4", "--steps", "2",
                 "--no-progress", "--device", "cpu"]) == 0
    assert np.load(out / "samples.npz")["x"].shape == (4, 1, 8, 8)
    assert (out / "samples.png").stat().st_size > 0


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--data", "moons", "--conditional"], "`--conditional` needs a labelled set"),
    (["train", "--batch-size", "0"], "`--batch-size` must be an integer >= 1"),  # as typed
    (["train", "--grad-clip", "0"], "`--grad-clip` must be a positive number or None"),
    (["train", "--grad-clip", "tight"], "--grad-clip: must be a number or 'none', got 'tight'"),
    (["train", "--weight-decay", "-1"], "`--weight-decay` must be a number >= 0"),
    (["train", "--precision", "fp8"], "invalid choice: 'fp8'"),
    (["train", "--data", "circles"], "invalid choice: 'circles'"),
    (["train", "--device", "tpu"], "`--device` must be 'auto' or a torch device"),
    (["train", "--model", "unet8", "--data", "moons"], "`--model unet8` needs image data"),
    (["train", "--dist-timeout", "0"], "`--dist-timeout` must be a positive number of seconds"),
])
def test_train_bad_input(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--out", str(tmp_path / "x"), "--steps", "1", "--no-progress"])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_sample_bad_input(tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "--data", "moons", "--steps", "1", "--out", str(out), *TINY])
    for argv, message in [
        (["--label", "0"], "`--label` needs a conditional model (trained with --conditional)"),
        (["--w", "2"], "`--w` needs `--label`"),
        (["--n", "0"], "`--n` must be >= 1"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(["sample", "--checkpoint", str(out), "--no-progress", *argv])
        assert exit_.value.code == 2
        assert message in capsys.readouterr().err
    (tmp_path / "cut.safetensors").write_bytes((out / CHECKPOINT_NAME).read_bytes()[:50])
    with pytest.raises(SystemExit):
        main(["sample", "--checkpoint", str(tmp_path / "cut.safetensors")])
    assert "cut.safetensors' is truncated" in capsys.readouterr().err


def test_build_parser_requires_a_command():
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def _sample_argv(model, *argv):
    return ["sample", "--checkpoint", str(model), "--n", "32", "--steps", "5",
            "--no-progress", "--device", "cpu", *argv]


def test_classifier_train_resume_and_classifier_guidance(tmp_path, capsys, monkeypatch):
    model, clf = tmp_path / "model", tmp_path / "clf"
    assert main(["train", "--data", "mixture", "--steps", "5", "--out", str(model), *TINY]) == 0

    def train_classifier(out, *more):
        return main(["train", "--data", "mixture", "--model", "classifier", "--steps", "20",
                     "--checkpoint-every", "5", "--out", str(out), *TINY, *more])

    save, saved = ClassifierTrainer.save_checkpoint, []

    def save_and_log(self, path=None):
        written = save(self, path)
        saved.append(self.step)
        if saved == [5, 10]:
            raise KeyboardInterrupt  # the first run is killed after its step-10 checkpoint
        return written

    monkeypatch.setattr(ClassifierTrainer, "save_checkpoint", save_and_log)
    with pytest.raises(KeyboardInterrupt):
        train_classifier(clf)
    ck = load_checkpoint(clf / CHECKPOINT_NAME)
    assert ck.model_name == "NoisyClassifier" and ck.step == 10
    assert ck.model_config == {"num_classes": 8, "kind": "mlp", "dim": 2, "hidden": 16,
                               "depth": 1, "channels": 1, "base": 32, "T": 20}
    assert ck.extra["train_config"]["label_dropout"] == 0.0
    # resumed == trained in one go (CPU: bit for bit)
    assert train_classifier(clf, "--resume") == 0
    assert saved == [5, 10, 15, 20, 20]  # resumed at step 10 (and saved once more at the end)
    monkeypatch.undo()
    assert train_classifier(tmp_path / "once") == 0
    resumed, once = (load_checkpoint(p / CHECKPOINT_NAME) for p in (clf, tmp_path / "once"))
    assert resumed.step == 20
    for name, value in once.model_state.items():
        torch.testing.assert_close(resumed.model_state[name], value, rtol=0, atol=0)
    assert np.load(clf / "loss.npz")["steps"].tolist() == [5, 10, 15, 20]
    assert "trained 10 steps (resumed at step 10, now at 20)" in capsys.readouterr().out

    for sampler in ("ddim", "ddpm"):
        runs = {}
        for gamma in ("0", "2"):
            folder = tmp_path / f"{sampler}{gamma}"
            assert main(_sample_argv(model, "--sampler", sampler, "--classifier", str(clf),
                                     "--gamma", gamma, "--label", "3", "--out",
                                     str(folder))) == 0
            s = np.load(folder / "samples.npz")
            assert s["x"].shape == (32, 2) and np.isfinite(s["x"]).all()
            assert (s["y"] == 3).all()
            runs[gamma] = s["x"]
        assert main(_sample_argv(model, "--sampler", sampler, "--out",
                                 str(tmp_path / "plain"), "--overwrite")) == 0
        plain = np.load(tmp_path / "plain" / "samples.npz")["x"]
        np.testing.assert_allclose(runs["0"], plain, rtol=0, atol=1e-6)  # γ = 0: unguided
        assert np.abs(runs["2"] - plain).max() > 1e-3


@pytest.mark.parametrize(("argv", "message"), [
    (["--data", "moons", "--model", "classifier"], "`--model classifier` needs a labelled set"),
    (["--data", "mixture", "--model", "classifier", "--conditional"],
     "`--conditional` does not apply to `--model classifier`"),
])
def test_train_classifier_bad_input(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(["train", *argv, "--out", str(tmp_path / "x"), "--steps", "1", "--no-progress"])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_sample_classifier_bad_input(tmp_path, capsys):
    model, clf = tmp_path / "model", tmp_path / "clf"
    one = ["--steps", "1", "--checkpoint-every", "0", *TINY]
    main(["train", "--data", "mixture", "--out", str(model), *one])
    main(["train", "--data", "mixture", "--model", "classifier", "--out", str(clf), *one])
    main(["train", "--data", "mixture", "--model", "classifier", "--out", str(tmp_path / "T10"),
          *one, "--T", "10"])
    main(["train", "--data", "digits", "--model", "classifier", "--out", str(tmp_path / "img"),
          *one, "--width", "8"])
    main(["train", "--data", "mixture", "--model", "classifier", "--out", str(tmp_path / "su"),
          *one, "--schedule", "su"])
    for argv, message in [
        (["--gamma", "2", "--label", "0"], "`--gamma` needs `--classifier`"),
        (["--classifier", str(clf), "--gamma", "2", "--w", "1", "--label", "0"],
         "`--gamma`/`--classifier` and `--w` exclude each other"),
        (["--classifier", str(clf)], "`--classifier` needs `--label`"),
        (["--classifier", str(clf), "--gamma", "-1", "--label", "0"],
         "`--gamma` must be a finite number >= 0, got -1.0"),
        (["--classifier", str(clf), "--label", "8"],
         "`--label` must lie in 0..7 for this classifier (num_classes = 8), got 8"),
        (["--classifier", str(tmp_path / "T10"), "--label", "0"],
         "`--classifier` was trained with T = 10, but the model's schedule has T = 20"),
        (["--classifier", str(tmp_path / "su"), "--label", "0"],
         "`--classifier` was trained with another noise schedule than the model's"),
        (["--classifier", str(tmp_path / "img"), "--label", "0"],
         "`--classifier` takes inputs of shape (1, 8, 8), but the model samples shape (2,)"),
        (["--classifier", str(model), "--label", "0"],
         "`--classifier` must be a NoisyClassifier checkpoint"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(_sample_argv(model, *argv))
        assert exit_.value.code == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(_sample_argv(clf))
    assert "`--checkpoint` must be a diffusion model, got a NoisyClassifier" in \
        capsys.readouterr().err


def test_digits_mlp_samples_draw_as_an_image_grid(tmp_path):
    from matplotlib.image import imread

    from kexue_nb.diffusion.__main__ import _grid_png

    out = tmp_path / "mlp"
    assert main(["train", "--data", "digits", "--model", "mlp", "--steps", "2",
                 "--checkpoint-every", "0", "--out", str(out), *TINY]) == 0
    assert load_checkpoint(out / CHECKPOINT_NAME).extra["data_shape"] == [1797, 64]
    for with_run_json in (True, False):
        if not with_run_json:
            (out / "run.json").unlink()
        assert main(_sample_argv(out, "--n", "9", "--steps", "2", "--overwrite")) == 0
        x = np.load(out / "samples.npz")["x"]
        assert x.shape == (9, 64)
        png = (out / "samples.png").read_bytes()
        assert png == _grid_png(x.reshape(9, 1, 8, 8))
        assert imread(out / "samples.png").ndim == 3


def test_train_refuses_an_earlier_run_unless_resumed_or_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", "moons", "--steps", "6", "--checkpoint-every", "0",
            "--out", str(out), *TINY]
    assert main(args) == 0
    (out / "samples.png").write_bytes(b"an earlier sample grid")
    capsys.readouterr()
    for extra in ([], ["--allow-change", "lr"]):  # a forgotten --resume loses nothing
        with pytest.raises(SystemExit) as refused:
            main([*args[:4], "2", *args[5:], *extra])
        assert refused.value.code == 2
        assert load_checkpoint(out / CHECKPOINT_NAME).step == 6
    err = capsys.readouterr().err
    assert "holds an earlier run (checkpoint.safetensors, loss.npz, run.json, samples.png)" in err
    assert "pass --resume to continue it or --overwrite to replace it" in err
    with pytest.raises(SystemExit):
        main([*args, "--resume", "--overwrite"])
    assert "exclude each other" in capsys.readouterr().err
    # --overwrite starts afresh and leaves no file of the earlier run beside the new model
    assert main([*args[:4], "2", *args[5:], "--overwrite"]) == 0
    assert load_checkpoint(out / CHECKPOINT_NAME).step == 2 and not (out / "samples.png").exists()
    assert "trained 2 steps on cpu" in capsys.readouterr().out


def test_resume_says_where_it_starts(tmp_path, capsys):
    out = tmp_path / "typo"
    args = ["train", "--data", "moons", "--steps", "4", "--checkpoint-every", "0",
            "--out", str(out), *TINY, "--resume"]
    assert main(args) == 0  # nothing to resume: said in one line, then a run from step 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"--resume: no checkpoint in {str(out)!r}, so this run starts at step 0"
    assert lines[1:] and lines[-1].startswith("trained 4 steps on cpu")
    assert main([*args[:4], "6", *args[5:]]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("trained 2 steps (resumed at step 4, now at 6)")
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(SystemExit):
        main([*args[:8], str(tmp_path / "file"), *args[9:]])
    assert "`--out` must be a folder" in capsys.readouterr().err



def test_no_progress_logs_a_line_every_log_every_steps(tmp_path, capsys):
    assert main(["train", "--data", "moons", "--steps", "10", "--checkpoint-every", "0",
                 "--out", str(tmp_path / "r"), *TINY]) == 0  # TINY: --log-every 5
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["step 5/10", "step 10/10"]
    assert lines[-1].startswith("trained 10 steps")


def test_help_names_no_empty_default_and_run_json_counts_the_points(tmp_path, capsys):
    for command in ("train", "sample"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default: 2000)" in subprocess.run(  # TrainConfig's own defaults
        [sys.executable, "-m", "kexue_nb.diffusion", "train", "--help"], capture_output=True,
        text=True, check=True).stdout.replace("\n", " ")
    assert main(["train", "--data", "digits", "--model", "mlp", "--steps", "1",
                 "--checkpoint-every", "0", "--out", str(tmp_path / "d"), *TINY]) == 0
    assert json.loads((tmp_path / "d" / "run.json").read_text())["n"] == 1797
