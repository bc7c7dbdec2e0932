"""Run by ``make wheel-check`` with the Python of a clean venv holding only kexue_nb's wheel and
its dependencies, in a folder with no repository: every module imports (a module that needs an
optional extra may fail only for want of that extra), the diffusion CLI answers ``--help``, and
the shipped digits-feature network loads. Not collected by pytest (no ``test_`` prefix)."""

import importlib
import importlib.metadata as metadata
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import kexue_nb

here = Path(kexue_nb.__file__).resolve()
assert "site-packages" in here.parts, f"kexue_nb imported from {here}, not from the wheel"
requires = metadata.requires("kexue_nb") or []
extras = {re.split(r"[ ;<>=\[]", r)[0].lower().replace("_", "-")
          for r in requires if "extra ==" in r}
top_names = metadata.packages_distributions()

failed = []
modules = [m.name for m in pkgutil.walk_packages(kexue_nb.__path__, "kexue_nb.")]
for name in modules:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        dists = {d.lower() for d in top_names.get(missing, [missing])}
        if not dists & extras:
            failed.append(f"{name}: {exc}")
assert not failed, "modules that fail to import from the wheel:\n" + "\n".join(failed)

cli = subprocess.run([sys.executable, "-m", "kexue_nb.diffusion", "--help"], capture_output=True,
                     text=True, check=True)
assert "train" in cli.stdout and "sample" in cli.stdout, cli.stdout

from kexue_nb.diffusion import metrics  # noqa: E402

assert metrics.FEATURES_PATH.is_file() and "site-packages" in metrics.FEATURES_PATH.parts
metrics.load_feature_net()
features = metrics.digits_features(np.zeros((2, 1, 8, 8)))
assert features.shape == (2, 64) and np.isfinite(features).all()
print(f"wheel check: {len(modules)} modules import, the CLI answers --help, the digits network "
      f"loads ({features.shape[1]} features)")
