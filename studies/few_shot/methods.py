"""Few-shot study: ways to do better than the shipped method, measured on the fold episodes of the seen classes only.

The shipped method (``visnet_hf.zero_shot.few_shot``; BENCHMARKS.md 5e) scores a new name by its zero-shot score plus
``example_weight`` x sqrt(n) x the scaled cosine to the mean of its n photos, in the feature space the trained classes'
statistics whiten (example_weight 4, example_shrinkage 0.8). Each variant below changes one thing, and is scored on the
same 75 episodes as the shipped method (bench_fewshot's fold models and draws: 5 folds of 30 classes held out of
training, 25 of them per episode, k = 1, 2, 4, 8, 16 photos each, 3 draws per fold and k); the table gives each
setting's top-1 by k and its paired difference from the shipped method. Neither unseen_dev nor the seen test split is
looked at. Every setting tried is listed: the best of a family is an optimistic estimate of what that family gives.

    python studies/few_shot/methods.py --work-dir /tmp/fs   # reuses bench_fewshot's fold models there (trains them if absent)

The families:

* learned per-name bias: a bias per name fitted on the photos (cross-entropy, the photo score of each photo computed
  without it: leave one out), weight decay chosen from the listed values;
* learned linear residual: a linear map on the whitened features added to the logits, fitted so (a probe that starts
  from the shipped scores, CLAP-like);
* hubness correction: each name's mean score over the other names' photos subtracted, times beta (CSLS-like);
* a second photo expert in the semantic space (the projected embeddings' cosine to the photos' mean), times w;
* a second photo expert on the prediction over the trained classes (log-probabilities, centred), times w;
* Tukey's power transform of the pooled features (x^p) before the statistics are fitted and the photos compared;
* the photo score as Tip-Adapter's kernel exp(-beta (1 - cos)) on the photos' mean, or on each photo (a cache);
* each name's photo mean shifted toward the mean of the m trained centroids nearest to it, b / sqrt(k) of a unit
  (the mean calibration of Yang et al. 2021's distribution calibration);
* the names' and the photos' scores each standardised over the names, per image, before they are summed (the photos'
  weighed w x sqrt(k));
* the names' expert itself adapted to the photos: a correction of the projection into the text space (a matrix added
  to it, from zero), fitted on the photos through the names' whole zero-shot score (cross-entropy, the photos' own
  scores fixed and taken leave one out, 50 Adam steps), weight decay chosen from the listed values (CLAP-like, on the
  projection instead of the logits).
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))  # the benchmark's setup (a script, not the library)

from _common import machine_text, write_study  # noqa: E402
from bench_fewshot import (  # noqa: E402
    KS,
    WAYS,
    accuracy,
    example_set,
    fold_draws,
    fold_models,
    study_command,
    trained_part,
    zero_shot_logits,
)

SHIPPED = {"example_weight": 4.0, "example_shrinkage": 0.8}
FAMILIES = {
    "learned per-name bias": [{"weight_decay": wd} for wd in (1e-3, 1e-2, 1e-1)],
    "learned linear residual": [{"weight_decay": wd} for wd in (1e-3, 1e-2, 1e-1, 1.0)],
    "hubness correction": [{"beta": b} for b in (0.25, 0.5, 1.0)],
    "semantic-space photo expert": [{"w": w} for w in (1.0, 2.0, 4.0)],
    "trained-class prediction photo expert": [{"w": w} for w in (1.0, 2.0, 4.0)],
    "power transform": [
        {"power": p, "example_shrinkage": a, "example_weight": w}
        for p, a, w in itertools.product((0.5, 0.75), (0.6, 0.8), (4.0, 5.0, 6.0))
    ],
    "kernel on the mean": [{"c": c, "beta": b} for c, b in itertools.product((4.0, 8.0, 16.0), (1.0, 3.0))],
    "kernel per photo (cache)": [{"c": c, "beta": b} for c, b in itertools.product((4.0, 8.0, 16.0), (1.0, 3.0))],
    "mean shifted toward the nearest trained centroids": [
        {"m": m, "b": b} for m, b in itertools.product((1, 3, 10), (0.25, 0.5, 1.0))
    ],
    "experts standardised per image": [{"w": w} for w in (0.5, 0.75, 1.0, 1.5, 2.0)],
    "adapted projection": [{"weight_decay": wd} for wd in (1e-2, 1e-1, 1.0)],
}


class Episode:
    """One episode's features and the shipped method's parts, computed once for every variant."""

    def __init__(self, side, model, vocabulary, support, support_labels, queries, statistics_by_power):
        from visnet_hf.zero_shot.few_shot import example_logits

        self.side, self.model, self.vocabulary, self.labels = side, model, vocabulary, support_labels
        self.support, self.queries, self.statistics_by_power = support, queries, statistics_by_power
        self.scale = model.logit_scale_value().detach()
        self.prototypes = model.zero_shot.prototypes
        self.onehot = F.one_hot(support_labels, WAYS).float()
        self.counts = self.onehot.sum(0)
        examples = example_set(side, support, support_labels, WAYS)
        with torch.no_grad():
            self.zero_shot = zero_shot_logits(side, vocabulary, queries, summed=True)
            self.support_zero_shot = zero_shot_logits(side, vocabulary, support, summed=True)
            photos = example_logits(queries, examples, [None] * WAYS, self.prototypes, SHIPPED["example_shrinkage"], self.scale)
            self.photos = photos
            self.shipped = self.zero_shot + SHIPPED["example_weight"] * photos
            self.support_shipped = self.support_zero_shot + SHIPPED["example_weight"] * self._support_photo_scores()

    def whitened(self, features: torch.Tensor) -> torch.Tensor:
        return self.prototypes.whitened(features, SHIPPED["example_shrinkage"])

    def _support_photo_scores(self) -> torch.Tensor:
        """The shipped photo score of each photo, its own name's mean taken without it (leave one out)."""
        means = self.onehot.T @ self.support / self.counts[:, None]
        anchors = self.whitened(means)
        scores = self.scale * self.whitened(self.support) @ anchors.T * self.counts.sqrt()
        own = self.counts[self.labels]
        left = (self.onehot.T @ self.support)[self.labels] - self.support
        without = self.whitened(left / (own - 1).clamp(min=1)[:, None])
        own_score = self.scale * (self.whitened(self.support) * without).sum(-1) * (own - 1).sqrt()
        rows = torch.arange(len(self.labels))
        scores[rows, self.labels] = own_score
        return scores

    def mean_expert(self, features_queries: torch.Tensor, features_support: torch.Tensor) -> torch.Tensor:
        means = F.normalize(self.onehot.T @ features_support, dim=-1)
        return self.scale * F.normalize(features_queries, dim=-1) @ means.T * self.counts.sqrt()


def fitted_correction(episode: Episode, weight_decay: float, linear: bool, steps: int = 100) -> torch.Tensor:
    """Bias (and a linear map on the whitened features) fitted on the photos over the shipped scores; the queries' correction."""
    torch.manual_seed(0)
    support, queries = episode.whitened(episode.support), episode.whitened(episode.queries)
    bias = torch.zeros(WAYS, requires_grad=True)
    weight = torch.zeros(WAYS, support.shape[1], requires_grad=linear)
    parameters = [bias, weight] if linear else [bias]
    optimizer = torch.optim.Adam(parameters, lr=0.01)
    for _ in range(steps):
        logits = episode.support_shipped + bias + episode.scale * support @ weight.T
        loss = F.cross_entropy(logits, episode.labels) + weight_decay * sum((p**2).sum() for p in parameters)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return bias + episode.scale * queries @ weight.T


class AdaptedProjection(torch.nn.Module):
    """A projection plus a correction (a matrix, from zero) fitted on the photos."""

    def __init__(self, projection: torch.nn.Linear) -> None:
        super().__init__()
        self.projection = projection
        self.correction = torch.nn.Parameter(torch.zeros_like(projection.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x) + x @ self.correction.T


def adapted_projection(episode: Episode, weight_decay: float, steps: int = 50) -> torch.Tensor:
    """The shipped scores with the names' zero-shot score computed through a projection corrected on the photos."""
    heads = episode.model.zero_shot_heads or episode.model
    original = heads.projection
    heads.projection = adapted = AdaptedProjection(original)
    try:
        optimizer = torch.optim.Adam([adapted.correction], lr=1e-3)
        photo_scores = episode.support_shipped - episode.support_zero_shot  # leave one out, fixed
        summed = episode.model.config.zero_shot_config.updated(score_temperature=1.0)  # the experts' sum, as photo_scores
        for _ in range(steps):  # the model itself: bench_fewshot.zero_shot_logits runs without gradients
            logits = episode.model(image_features=episode.support, vocabulary=episode.vocabulary, zero_shot_config=summed).logits
            logits = logits + photo_scores
            loss = F.cross_entropy(logits, episode.labels) + weight_decay * (adapted.correction**2).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            names = zero_shot_logits(episode.side, episode.vocabulary, episode.queries, summed=True)
    finally:
        heads.projection = original
    return names + SHIPPED["example_weight"] * episode.photos


@torch.no_grad()
def variant_logits(family: str, setting: dict, episode: Episode) -> torch.Tensor:
    model = episode.model
    if family in ("learned per-name bias", "learned linear residual"):
        with torch.enable_grad():
            return episode.shipped + fitted_correction(episode, setting["weight_decay"], family == "learned linear residual")
    if family == "adapted projection":
        with torch.enable_grad():
            return adapted_projection(episode, setting["weight_decay"])
    if family == "hubness correction":
        others = 1 - episode.onehot
        return episode.shipped - setting["beta"] * (episode.support_shipped * others).sum(0) / others.sum(0)
    heads = model.zero_shot_heads or model
    if family == "semantic-space photo expert":
        embed = lambda x: F.normalize(heads.projection(x), dim=-1)  # noqa: E731
        return episode.shipped + setting["w"] * episode.mean_expert(embed(episode.queries), embed(episode.support))
    if family == "trained-class prediction photo expert":
        trained = model.scored_embeddings(model.trained_class_embeddings)

        def prediction(x):
            logits = episode.scale * F.normalize(heads.projection(x), dim=-1) @ trained.T
            centred = model._combine(logits, heads.classifier(x)).log_softmax(-1)
            return centred - centred.mean(-1, keepdim=True)

        return episode.shipped + setting["w"] * episode.mean_expert(prediction(episode.queries), prediction(episode.support))
    if family == "power transform":
        fitted = episode.statistics_by_power[setting["power"]]
        support, queries = episode.support ** setting["power"], episode.queries ** setting["power"]
        means = episode.onehot.T @ support / episode.counts[:, None]
        whiten = lambda x: fitted.whitened(x, setting["example_shrinkage"])  # noqa: E731
        photos = episode.scale * whiten(queries) @ whiten(means).T * episode.counts.sqrt()
        return episode.zero_shot + setting["example_weight"] * photos
    if family == "experts standardised per image":
        root_k = episode.counts.mean().sqrt()
        return standardised(episode.zero_shot) + setting["w"] * root_k * standardised(episode.photos)
    queries, support = episode.whitened(episode.queries), episode.whitened(episode.support)
    if family == "mean shifted toward the nearest trained centroids":
        prototypes = episode.prototypes
        centroids = F.normalize(prototypes.centroids @ prototypes.whitening(SHIPPED["example_shrinkage"]), dim=-1)
        means = episode.whitened(episode.onehot.T @ episode.support / episode.counts[:, None])
        nearest = centroids[(means @ centroids.T).topk(setting["m"], dim=-1).indices].mean(1)
        anchors = F.normalize(means + setting["b"] / episode.counts[:, None].sqrt() * F.normalize(nearest, dim=-1), dim=-1)
        photos = episode.scale * queries @ anchors.T * episode.counts.sqrt()
        return episode.zero_shot + SHIPPED["example_weight"] * photos
    if family == "kernel on the mean":
        means = episode.whitened(episode.onehot.T @ episode.support / episode.counts[:, None])
        kernel = torch.exp(-setting["beta"] * (1 - queries @ means.T)) * episode.counts.sqrt()
    else:  # a cache of every photo, summed per name
        kernel = torch.exp(-setting["beta"] * (1 - queries @ support.T)) @ episode.onehot / episode.counts.sqrt()
    return episode.zero_shot + setting["c"] * episode.scale * kernel


def standardised(logits: torch.Tensor) -> torch.Tensor:
    """Each image's scores over the names, less their mean, over their standard deviation."""
    return (logits - logits.mean(-1, keepdim=True)) / logits.std(-1, keepdim=True)


def main() -> None:
    from visnet_hf.zero_shot import VisualPrototypes

    started = time.perf_counter()
    work, config, seen, folds = study_command(__doc__.splitlines()[0])
    shipped: list[list[float]] = [[] for _ in KS]
    scores = {family: [[[] for _ in KS] for _ in grid] for family, grid in FAMILIES.items()}
    for fold in fold_models(config, work, folds, seen):
        model, trained = fold.model, trained_part(fold, seen)
        statistics_by_power = {}
        for power in sorted({s["power"] for s in FAMILIES["power transform"]}):
            statistics_by_power[power] = VisualPrototypes(len(model.config.trained_class_names), fold.train_x.shape[1])
            statistics_by_power[power].fit([(trained[0] ** power, trained[1])])
        for draw in fold_draws(fold):
            episode = Episode(
                fold.side, model, draw.vocabulary, draw.support, draw.support_labels, draw.queries, statistics_by_power
            )
            shipped[draw.k_index].append(accuracy(episode.shipped, draw.query_labels))
            for family, grid in FAMILIES.items():
                for setting_index, setting in enumerate(grid):
                    scores[family][setting_index][draw.k_index].append(
                        accuracy(variant_logits(family, setting, episode), draw.query_labels)
                    )
        print(f"[fold {fold.index}] done ({time.perf_counter() - started:.0f}s)", flush=True)
    write(shipped, scores, time.perf_counter() - started)


def write(shipped, scores, seconds: float) -> None:
    flat_shipped = [v for per_k in shipped for v in per_k]
    rows = []
    for family, grid in FAMILIES.items():
        for setting, per_k in zip(grid, scores[family], strict=True):
            differences = [a - b for a, b in zip((v for p in per_k for v in p), flat_shipped, strict=True)]
            rows.append(
                {
                    "family": family,
                    "setting": setting,
                    "top1_by_k": {str(k): statistics.mean(v) for k, v in zip(KS, per_k, strict=True)},
                    "gain": statistics.mean(differences),
                    "se": statistics.stdev(differences) / len(differences) ** 0.5,
                }
            )
    result = {
        "episodes": len(flat_shipped),
        "shipped": {"setting": SHIPPED, "top1_by_k": {str(k): statistics.mean(v) for k, v in zip(KS, shipped, strict=True)}},
        "variants": rows,
        "seconds": seconds,
    }
    write_study("tinyimagenet_fewshot_methods", result, HERE, "REPORT.md", report)


def report(result: dict) -> str:
    ks = list(result["shipped"]["top1_by_k"])
    lines = [
        "# Few-shot study: variants of the shipped method on the fold episodes",
        "",
        f"Command: `{result['command']}` ({result['seconds'] / 60:.0f} min). Machine: {machine_text(result['machine'])}.",
        "",
        f"{result['episodes']} fold episodes of the seen classes (bench_fewshot's folds and draws); nothing here looks at",
        "unseen_dev or the seen test split. Top-1 by number of photos per class, and the paired difference from the",
        "shipped method over the same episodes (mean ± standard error). Every setting tried is listed; the best of a",
        "family is an optimistic estimate of that family (chosen on these same episodes).",
        "",
        "| variant | setting | " + " | ".join(f"k = {k}" for k in ks) + " | vs shipped |",
        "|---|---|" + "---|" * (len(ks) + 1),
        "| shipped | "
        + ", ".join(f"{k} {v}" for k, v in result["shipped"]["setting"].items())
        + " | "
        + " | ".join(f"{100 * result['shipped']['top1_by_k'][k]:.1f}" for k in ks)
        + " | |",
    ]
    for row in result["variants"]:
        setting = ", ".join(f"{k} {v}" for k, v in row["setting"].items())
        cells = " | ".join(f"{100 * row['top1_by_k'][k]:.1f}" for k in ks)
        lines.append(f"| {row['family']} | {setting} | {cells} | {100 * row['gain']:+.2f} ± {100 * row['se']:.2f} |")
    best = max(result["variants"], key=lambda row: row["gain"])
    lines += [
        "",
        f"Best of all: {best['family']} ({', '.join(f'{k} {v}' for k, v in best['setting'].items())}), "
        f"{100 * best['gain']:+.2f} ± {100 * best['se']:.2f} points over the shipped method.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
