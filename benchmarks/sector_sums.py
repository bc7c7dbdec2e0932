"""Exact sector probabilities: one integer sum over a common denominator against adding Fractions.

    .venv/bin/python benchmarks/sector_sums.py [--n 400] [--repeats 5]

For θ close to 2π(1 − 1/n) nearly all n inclusion–exclusion terms are alive. `kexue_nb.sector`
sums their integer numerators over b^{n−1} and reduces once; the reference adds one `Fraction`
per term (a gcd per addition). Both must give identical values; best of `--repeats` runs each,
interleaved.
"""

from __future__ import annotations

import argparse
import math
import time
from fractions import Fraction

from kexue_nb.sector import sector_probability


def fraction_per_term(n: int, theta: float) -> float:
    """The reference: the same sum with one Fraction addition per term."""
    t = Fraction(theta) / Fraction(2 * math.pi)
    if t >= 1 - Fraction(1, n):
        return 1.0
    total = Fraction(0)
    for k in range(1, n + 1):
        base = 1 - k + k * t
        if base <= 0:
            break
        total += (-1) ** (k - 1) * math.comb(n, k) * base ** (n - 1)
    return float(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    theta = 2 * math.pi * (1 - 1.5 / args.n)  # θ > π with about 2n/3 terms alive
    times = {"kexue_nb": [], "Fraction per term": []}
    values = {}
    for _ in range(args.repeats):
        for name, f in (("kexue_nb", sector_probability), ("Fraction per term", fraction_per_term)):
            begin = time.perf_counter()
            values[name] = f(args.n, theta)
            times[name].append(time.perf_counter() - begin)
    assert values["kexue_nb"] == values["Fraction per term"], values
    ours, ref = min(times["kexue_nb"]), min(times["Fraction per term"])
    print(f"n = {args.n}, θ = 2π(1 − 1.5/n): kexue_nb {ours * 1e3:.1f} ms, "
          f"Fraction per term {ref * 1e3:.1f} ms, ratio {ref / ours:.1f}×, identical values")


if __name__ == "__main__":
    main()
