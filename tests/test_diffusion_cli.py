"""Tests of the command line ``python -m kexue_nb.diffusion train|sample``."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from kexue_nb.diffusion.__main__ import build_parser, load_data, main, make_schedule
from kexue_nb.diffusion.checkpoint import CHECKPOINT_NAME, load_checkpoint
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
    assert "trained 20 steps" in capsys.readouterr().out

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
    assert main(["sample", "--checkpoint", str(out), "--n", "16", "--sampler", "ddpm",
                 "--variance", "posterior", "--seed", "3", "--out", str(folder),
                 "--no-progress", "--device", "cpu"]) == 0
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
    (["train", "--batch-size", "0"], "`batch_size` must be an integer >= 1"),
    (["train", "--precision", "fp8"], "invalid choice: 'fp8'"),
    (["train", "--data", "circles"], "invalid choice: 'circles'"),
    (["train", "--device", "tpu"], "`device` must be 'auto' or a torch device"),
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
        (["--label", "0"], "`--label` must lie in 0..-1"),
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
