"""Reference figures for src/evaluation, computed independently with scikit-learn and numpy.

Run from the repository root:  /usr/bin/python3 test/vectors/evaluation/generate.py
Writes breast-cancer-reference.json and wine-reference.json next to this file (see README.md).
Deterministic: fixed splits, fixed seeds, deterministic solvers.
"""

import csv
import json
import os
import warnings

import numpy as np
import sklearn
from sklearn.calibration import calibration_curve
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler, label_binarize

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
SCORE_BINS = [10, 100, 1000]
CALIBRATION_BINS = [10, 15]
EPS = 1e-15


def bin_ids(p, n_bins):
    """scikit-learn's calibration_curve(strategy='uniform') bin rule."""
    bins = np.linspace(0.0, 1.0, n_bins + 1)
    return np.searchsorted(bins[1:-1], p)


def nan_to_none(x):
    x = float(x)
    return None if np.isnan(x) else x


def prf(y, pred, k):
    labels = list(range(k))
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=labels, average=None, zero_division=0)
    # Which per-class values sklearn had to substitute (0/0): reported as null by Entente.
    pred_sum = np.bincount(pred, minlength=k)
    true_sum = np.bincount(y, minlength=k)
    tp = np.array([np.sum((pred == c) & (y == c)) for c in labels])
    macro = precision_recall_fscore_support(y, pred, labels=labels, average="macro", zero_division=0)
    micro = precision_recall_fscore_support(y, pred, labels=labels, average="micro", zero_division=0)
    return {
        "perClass": [
            {
                "precision": None if pred_sum[c] == 0 else float(p[c]),
                "recall": None if true_sum[c] == 0 else float(r[c]),
                "f1": None if 2 * tp[c] + (pred_sum[c] - tp[c]) + (true_sum[c] - tp[c]) == 0 else float(f[c]),
                "support": int(s[c]),
            }
            for c in labels
        ],
        "macro": {"precision": float(macro[0]), "recall": float(macro[1]), "f1": float(macro[2])},
        "micro": {"precision": float(micro[0]), "recall": float(micro[1]), "f1": float(micro[2])},
    }


def calibration(conf, hit, n_bins):
    """Reliability bins with sklearn's calibration_curve, plus ECE/MCE in numpy."""
    ids = bin_ids(conf, n_bins)
    counts = np.bincount(ids, minlength=n_bins)
    sums = np.bincount(ids, weights=conf, minlength=n_bins)
    pos = np.bincount(ids, weights=hit.astype(float), minlength=n_bins)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # pos_label=1 so that a set with no (or only) positives is accepted
        prob_true, prob_pred = calibration_curve(hit.astype(int), conf, n_bins=n_bins, strategy="uniform", pos_label=1)
    nz = counts > 0
    gap = np.abs(pos[nz] / counts[nz] - sums[nz] / counts[nz])
    return {
        "bins": n_bins,
        "counts": counts.astype(int).tolist(),
        "positives": pos.astype(int).tolist(),
        # sklearn's own output (non-empty bins only, in bin order)
        "sklearnProbTrue": prob_true.tolist(),
        "sklearnProbPred": prob_pred.tolist(),
        "ece": float(np.sum(counts[nz] / len(conf) * gap)) if len(conf) else None,
        "mce": float(np.max(gap)) if len(conf) else None,
    }


def classification(P, y, k):
    n = len(y)
    pred = np.argmax(P, axis=1)  # lowest index on ties
    out = {
        "rows": int(n),
        "accuracy": float(accuracy_score(y, pred)) if n else None,
        "logLoss": float(log_loss(y, P, eps=EPS, labels=list(range(k)))) if n else None,
        # Same loss without sklearn's row renormalisation (the definition Entente sums).
        "logLossNoRenormalise": float(np.mean(-np.log(np.clip(P[np.arange(n), y], EPS, 1 - EPS)))),
        "confusion": confusion_matrix(y, pred, labels=list(range(k))).tolist(),
        **prf(y, pred, k),
    }
    if k == 2:
        s = P[:, 1]
        out["brier"] = float(brier_score_loss(y, s, pos_label=1))
        both = 0 < y.sum() < n
        out["rocAucExact"] = float(roc_auc_score(y, s)) if both else None
        out["averagePrecisionExact"] = float(average_precision_score(y, s)) if y.sum() > 0 else None
        binned = {}
        for b in SCORE_BINS:
            ids = bin_ids(s, b)
            pos = np.bincount(ids[y == 1], minlength=b)
            neg = np.bincount(ids[y == 0], minlength=b)
            if both:
                fpr, tpr, _ = roc_curve(y, ids, drop_intermediate=False)
            binned[str(b)] = {
                "rocAuc": float(roc_auc_score(y, ids)) if both else None,
                "averagePrecision": float(average_precision_score(y, ids)) if y.sum() > 0 else None,
                "bound": float(np.sum(pos * neg) / (2 * pos.sum() * neg.sum())) if both else None,
                "rocCurve": {"fpr": fpr.tolist(), "tpr": tpr.tolist()} if both else None,
            }
        out["binned"] = binned
        conf, hit = s, y == 1
    else:
        Y = label_binarize(y, classes=list(range(k)))
        out["brier"] = float(np.mean(np.sum((P - Y) ** 2, axis=1)))
        # scikit-learn refuses one-vs-rest AUC when a class has no rows or only rows: null then
        both = all(0 < Y[:, c].sum() < n for c in range(k))
        some = all(Y[:, c].sum() > 0 for c in range(k))
        out["rocAucExact"] = (
            float(roc_auc_score(y, P, multi_class="ovr", average="macro", labels=list(range(k)))) if both else None
        )
        out["averagePrecisionExact"] = float(average_precision_score(Y, P, average="macro")) if some else None
        binned = {}
        for b in SCORE_BINS:
            ids = np.stack([bin_ids(P[:, c], b) for c in range(k)], axis=1)
            bounds = []
            for c in range(k):
                pos = np.bincount(ids[y == c, c], minlength=b)
                neg = np.bincount(ids[y != c, c], minlength=b)
                bounds.append(np.sum(pos * neg) / (2 * pos.sum() * neg.sum()) if both else None)
            binned[str(b)] = {
                # ovr macro on the bin indices: each class's column replaced by its bin index
                "rocAuc": float(np.mean([roc_auc_score(Y[:, c], ids[:, c]) for c in range(k)])) if both else None,
                "averagePrecision": float(average_precision_score(Y, ids, average="macro")) if some else None,
                "bound": float(np.mean(bounds)) if both else None,
            }
        out["binned"] = binned
        conf, hit = np.max(P, axis=1), pred == y
    out["calibration"] = {str(b): calibration(conf, hit, b) for b in CALIBRATION_BINS}
    return out


def fairness(P, y, groups, values, k):
    pred = np.argmax(P, axis=1)
    per = {}
    for g, name in enumerate(values):
        m = groups == g
        rows = int(m.sum())
        entry = {"rows": rows, "accuracy": float(np.mean(pred[m] == y[m])) if rows else None}
        if k == 2:
            pos = m & (y == 1)
            neg = m & (y == 0)
            entry["selectionRate"] = float(np.mean(pred[m] == 1)) if rows else None
            entry["truePositiveRate"] = float(np.mean(pred[pos] == 1)) if pos.any() else None
            entry["falsePositiveRate"] = float(np.mean(pred[neg] == 1)) if neg.any() else None
        per[name] = entry
    out = {"groups": per}
    if k == 2:

        def spread(key):
            v = [e[key] for e in per.values() if e[key] is not None]
            return (max(v) - min(v)) if v else None

        sel = [e["selectionRate"] for e in per.values() if e["selectionRate"] is not None]
        tpr_d, fpr_d = spread("truePositiveRate"), spread("falsePositiveRate")
        out["demographicParityDifference"] = spread("selectionRate")
        out["demographicParityRatio"] = (min(sel) / max(sel)) if sel and max(sel) > 0 else None
        out["equalOpportunityDifference"] = tpr_d
        out["equalizedOddsDifference"] = None if tpr_d is None or fpr_d is None else max(tpr_d, fpr_d)
    return out


def document(name, P, y, k, groups, values, attribute, slice_name, slice_member, notes):
    return {
        "name": name,
        "generator": "test/vectors/evaluation/generate.py",
        "versions": {"sklearn": sklearn.__version__, "numpy": np.__version__},
        "notes": notes,
        "spec": {
            "numClasses": k,
            "sensitive": {"attribute": attribute, "values": values},
            "slices": [slice_name],
        },
        "scoreBins": SCORE_BINS,
        "calibrationBins": CALIBRATION_BINS,
        "rows": {
            "probabilities": P.tolist(),
            "labels": y.tolist(),
            "groups": groups.tolist(),
            "slice": slice_member.astype(int).tolist(),
        },
        "overall": classification(P, y, k),
        "fairness": fairness(P, y, groups, values, k),
        "slices": {slice_name: classification(P[slice_member], y[slice_member], k)},
    }


def breast_cancer():
    path = os.path.join(ROOT, "datasets", "breast-cancer", "breast-cancer.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    schema = json.load(open(os.path.join(ROOT, "datasets", "breast-cancer", "schema.json")))
    names = [c["name"] for c in schema["features"]]
    classes = schema["label"]["classes"]  # ["malignant", "benign"]: benign is class 1
    X = np.array([[float(r[c]) for c in names] for r in rows])
    y = np.array([classes.index(r[schema["label"]["name"]]) for r in rows])
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=42, stratify=y)
    scaler = StandardScaler().fit(Xtr)
    # C = 0.05: a regularised model, so the test set has some errors and a non-trivial calibration.
    model = LogisticRegression(C=0.05, max_iter=1000).fit(scaler.transform(Xtr), ytr)
    P = model.predict_proba(scaler.transform(Xte))
    rng = np.random.default_rng(20261208)
    radius = Xte[:, names.index("mean_radius")]
    # Synthetic sensitive attribute "site": 3 values; rows with mean_radius above the test median
    # are more likely to come from site_c (probabilities 0.2/0.3/0.5 vs 0.45/0.35/0.2).
    big = radius > np.median(radius)
    u = rng.random(len(yte))
    groups = np.where(
        big,
        np.where(u < 0.2, 0, np.where(u < 0.5, 1, 2)),
        np.where(u < 0.45, 0, np.where(u < 0.8, 1, 2)),
    )
    groups[rng.random(len(yte)) < 0.05] = -1  # about 5% of rows without a recorded value
    member = Xte[:, names.index("mean_texture")] > 20.0
    return document(
        "breast-cancer",
        P,
        yte,
        2,
        groups,
        ["site_a", "site_b", "site_c"],
        "site",
        "mean_texture>20",
        member,
        "UCI Breast Cancer Wisconsin (Diagnostic), datasets/breast-cancer; class 1 = benign (schema order). "
        "train_test_split(test_size=0.3, random_state=42, stratify=y); StandardScaler fit on train; "
        "LogisticRegression(C=0.05, lbfgs). Sensitive attribute 'site' synthetic: numpy default_rng(20261208), "
        "correlated with mean_radius above the test median; group -1 = missing (about 5%). "
        "Slice 'mean_texture>20': test rows with mean_texture > 20.",
    )


def wine():
    data = load_wine()
    X, y = data.data, data.target
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.5, random_state=7, stratify=y)
    # Only 4 of the 13 features and strong regularisation, so the 3-class model makes mistakes.
    cols = [0, 1, 3, 10]  # alcohol, malic_acid, alcalinity_of_ash, hue
    scaler = StandardScaler().fit(Xtr[:, cols])
    model = LogisticRegression(C=0.1, multi_class="multinomial", max_iter=1000).fit(scaler.transform(Xtr[:, cols]), ytr)
    P = model.predict_proba(scaler.transform(Xte[:, cols]))
    rng = np.random.default_rng(17)
    # Synthetic sensitive attribute "cohort": 2 values, cohort_y more likely (0.7) when alcohol > 13.
    high = Xte[:, 0] > 13.0
    groups = np.where(rng.random(len(yte)) < np.where(high, 0.7, 0.3), 1, 0)
    member = Xte[:, 9] > 5.0  # color_intensity > 5
    return document(
        "wine",
        P,
        yte,
        3,
        groups,
        ["cohort_x", "cohort_y"],
        "cohort",
        "color_intensity>5",
        member,
        "UCI Wine via sklearn.datasets.load_wine (178 rows, 3 classes). train_test_split(test_size=0.5, "
        "random_state=7, stratify=y); features alcohol, malic_acid, alcalinity_of_ash, hue; StandardScaler "
        "fit on train; LogisticRegression(C=0.1, multinomial, lbfgs). Sensitive attribute 'cohort' synthetic: "
        "numpy default_rng(17), cohort_y with probability 0.7 when alcohol > 13 else 0.3. "
        "Slice 'color_intensity>5'.",
    )


def synthetic_binary():
    """Hand-made edge cases: scores on bin edges, ties (p1 = 0.5 predicts class 0), 0 and 1 exactly,
    a group with no positives (null TPR), a group with no rows."""
    rng = np.random.default_rng(5)
    edges = [0.0, 1.0, 0.5, 0.1, 0.2, 0.3, 0.7, 0.7000000000000001, 0.30000000000000004, 0.9, 0.05, 0.95]
    s = np.array(edges + list(np.round(rng.random(28), 2)))
    y = (rng.random(len(s)) < s).astype(int)
    y[:4] = [0, 1, 1, 0]
    P = np.stack([1 - s, s], axis=1)
    groups = rng.integers(0, 2, len(s))
    groups[y == 0] = np.where(rng.random(int((y == 0).sum())) < 0.5, 0, 2)  # group 2: negatives only
    groups[-3:] = -1
    member = np.zeros(len(s), dtype=bool)
    member[::3] = True
    return document(
        "synthetic-binary",
        P,
        y,
        2,
        groups,
        ["g0", "g1", "g2", "g3"],
        "group",
        "every third row",
        member,
        "Synthetic: scores on bin edges and rounded uniform scores (numpy default_rng(5)); g2 has only "
        "negatives, g3 has no rows; the last 3 rows have no group.",
    )


def synthetic_multiclass():
    """4 classes; class 3 never the label, class 2 never predicted, one tie row (argmax = lowest index)."""
    rng = np.random.default_rng(11)
    P = rng.dirichlet([1.0, 1.0, 1.0, 1.0], 30)
    for row in P:  # class 2 never the strict maximum: swap it with the smallest
        m = np.argmin(row)
        row[2], row[m] = row[m], row[2]
    P[0] = [0.4, 0.4, 0.2, 0.0]
    P[1] = [0.0, 0.0, 0.0, 1.0]
    y = rng.integers(0, 3, 30)
    groups = rng.integers(-1, 2, 30)
    member = P[:, 0] > 0.25
    return document(
        "synthetic-multiclass",
        P,
        y,
        4,
        groups,
        ["g0", "g1"],
        "group",
        "p0>0.25",
        member,
        "Synthetic: numpy default_rng(11) Dirichlet(1,1,1,1) probabilities, labels in 0..2 (class 3 absent: "
        "recall null, one-vs-rest AUC undefined), class 2 never predicted (precision null); row 0 a tie.",
    )


def bin_vectors():
    """numpy's bin index for values on and around the edges, for several bin counts."""
    cases = []
    for n in [2, 3, 7, 10, 15, 100, 1000, 100000]:
        step = 1.0 / n
        values = {0.0, 1.0, 0.5, 0.1, 0.2, 0.3, 0.7, 0.9, 1e-300, 1 - 2**-53}
        for i in list(range(1, min(n, 40))) + list(range(max(1, n - 5), n)):
            for v in (i / n, i * step):
                values.update({v, float(np.nextafter(v, 0)), float(np.nextafter(v, 1))})
        vs = sorted(values)
        cases.append({"bins": n, "values": vs, "binIds": bin_ids(np.array(vs), n).tolist()})
    return {"rule": "np.searchsorted(np.linspace(0, 1, n + 1)[1:-1], p)", "numpy": np.__version__, "cases": cases}


def main():
    with open(os.path.join(HERE, "bin-edges.json"), "w") as f:
        json.dump(bin_vectors(), f, indent=1)
        f.write("\n")
    for name, doc in [
        ("breast-cancer-reference.json", breast_cancer()),
        ("wine-reference.json", wine()),
        ("synthetic-binary-reference.json", synthetic_binary()),
        ("synthetic-multiclass-reference.json", synthetic_multiclass()),
    ]:
        with open(os.path.join(HERE, name), "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        o = doc["overall"]
        print(name, "rows", o["rows"], "accuracy", o["accuracy"], "auc", o["rocAucExact"], "logloss", o["logLoss"])


if __name__ == "__main__":
    main()
