"""The 1-D Fokker–Planck solver of kexue_nb.sde against SciPy's solve_ivp, side by side.

Problem: the Ornstein–Uhlenbeck equation dx = −θx dt + g dw (θ = g = 1) from N(2, 0.5²) to
t = 1, on the same grid for every method (uniform cells on [−6, 6], the same
Scharfetter–Gummel finite-volume operator L). Each method runs at the cheapest setting of its
ladder (steps for the solver, rtol for solve_ivp) whose L1 error against the exact cell
averages is at most the target (1e-3); it is then timed ``--repeats`` times and the median is
reported, with the mass drift |Σ h p(1) − Σ h p(0)| and the smallest density value.

    python benchmarks/fokker_planck.py                 # 300 cells, target 1e-3
    python benchmarks/fokker_planck.py --cells 600 --repeats 9

solve_ivp integrates dp/dt = L p by the method of lines with a stiff method (BDF, Radau) and
the exact sparse Jacobian L. Timings depend on the machine and on its load.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import scipy.integrate
import scipy.stats

from kexue_nb import sde

THETA, G, M0, S0, T_END = 1.0, 1.0, 2.0, 0.5, 1.0


def drift(x: np.ndarray, t: float) -> np.ndarray:
    return -THETA * x


def diffusion(x: np.ndarray, t: float) -> np.ndarray:
    return G + 0 * x


def gaussian_cells(edges: np.ndarray, mean: float, sd: float) -> np.ndarray:
    return np.diff(scipy.stats.norm.cdf(edges, mean, sd)) / np.diff(edges)


def run_solver(edges: np.ndarray, p0: np.ndarray, steps: int, method: str) -> np.ndarray:
    sol = sde.solve_fokker_planck(
        drift, diffusion, p0, edges, T_END / steps, steps, method=method, autonomous=True,
        progress=False,
    )
    return sol.p[-1]


def run_ivp(edges: np.ndarray, p0: np.ndarray, rtol: float, method: str) -> np.ndarray:
    operator = sde.fokker_planck_matrix(drift, diffusion, edges).tocsc()
    result = scipy.integrate.solve_ivp(
        lambda t, p: operator @ p, (0.0, T_END), p0, method=method, jac=operator,
        rtol=rtol, atol=rtol * 1e-3,
    )
    if not result.success:
        raise RuntimeError(f"solve_ivp ({method}) failed: {result.message}")
    return result.y[:, -1]


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=300, help="number of cells on [-6, 6]")
    parser.add_argument("--target", type=float, default=1e-3, help="L1 error to reach at t = 1")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per method")
    args = parser.parse_args(argv)

    edges = np.linspace(-6.0, 6.0, args.cells + 1)
    widths = np.diff(edges)
    p0 = gaussian_cells(edges, M0, S0)
    mean, var = sde.ou_mean_var(T_END, THETA, G, m0=M0, s0=S0)
    exact = gaussian_cells(edges, mean, float(np.sqrt(var)))

    def l1(p: np.ndarray) -> float:
        return float(np.abs(p - exact) @ widths)

    candidates = [
        ("kexue_nb MPRK22", "steps", [5, 10, 20, 40, 80, 160, 320],
         lambda v: run_solver(edges, p0, v, "mprk22")),
        ("kexue_nb implicit Euler", "steps", [250, 500, 1000, 2000, 4000, 8000],
         lambda v: run_solver(edges, p0, v, "euler")),
        ("solve_ivp BDF", "rtol", [1e-1, 3e-2, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6],
         lambda v: run_ivp(edges, p0, v, "BDF")),
        ("solve_ivp Radau", "rtol", [1e-1, 3e-2, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6],
         lambda v: run_ivp(edges, p0, v, "Radau")),
    ]
    rows = []
    for name, knob, ladder, run in candidates:
        for value in ladder:
            p = run(value)
            if l1(p) <= args.target:
                seconds = median_seconds(lambda run=run, value=value: run(value), args.repeats)
                drift_mass = abs(float(widths @ p) - float(widths @ p0))
                rows.append((name, f"{knob}={value:g}", l1(p), drift_mass, float(p.min()), seconds))
                break
        else:
            rows.append((name, f"{knob}: none of {ladder}", float("nan"), float("nan"),
                         float("nan"), float("nan")))

    ours = rows[0][5]
    print(f"OU to t = {T_END:g}, {args.cells} cells on [-6, 6], L1 target {args.target:g}, "
          f"median of {args.repeats} runs")
    header = (f"{'method':<26}{'setting':<16}{'L1 error':>10}{'mass drift':>12}{'min p':>11}"
              f"{'time [ms]':>11}{'vs MPRK22':>11}")
    print(header)
    print("-" * len(header))
    for name, setting, err, mass, low, seconds in rows:
        print(f"{name:<26}{setting:<16}{err:>10.2e}{mass:>12.1e}{low:>11.1e}"
              f"{seconds * 1e3:>11.2f}{seconds / ours:>10.1f}x")
    best_ivp = min(r[5] for r in rows if r[0].startswith("solve_ivp"))
    print(f"\nspeed-up of MPRK22 over the faster solve_ivp method: {best_ivp / ours:.1f}x "
          f"(target >= 5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
