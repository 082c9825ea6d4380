"""Times scikit-learn's RandomForestClassifier(n_estimators=100, n_jobs=2) on the rows
`cargo bench -p models --bench forest_fit -- ROWS_CSV` writes (features, then the label),
with the forest's depth limit, feature share, leaf size, class balancing and rows per
tree, median of three fits.

    python3 models/bench/forest_vs_sklearn.py ROWS_CSV
"""

import sys
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier


def main(path: str) -> None:
    data = np.loadtxt(path, delimiter=",")
    x, y = data[:, :-1], data[:, -1].astype(int)
    # Like the forest, each tree sees a bootstrap of five rows per failing row (the
    # forest draws them class-balanced: every failing row's worth, four healthy ones
    # for each), not of all the rows.
    per_tree = int(5 * y.sum())
    times = []
    for seed in range(3):
        model = RandomForestClassifier(
            n_estimators=100,
            n_jobs=2,
            max_depth=8,
            max_features=0.5,
            min_samples_leaf=3,
            class_weight="balanced_subsample",
            max_samples=per_tree,
            random_state=seed,
        )
        started = time.perf_counter()
        model.fit(x, y)
        times.append(time.perf_counter() - started)
    times.sort()
    print(
        f"scikit-learn: 100 trees, depth <= 8, on {x.shape[0]} rows x {x.shape[1]} features "
        f"({per_tree} per tree), n_jobs=2: {times[1]:.3f} s (median of 3)"
    )


if __name__ == "__main__":
    main(sys.argv[1])
