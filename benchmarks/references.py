"""The references the accuracy benchmarks set beside VSENet, each reading what the model reads (the same cached
features, test-time views included, and the same class texts) and each tuned on the same folds or development
split as the model's own settings.

Zero-shot maps (fit on the seen classes' features and class embeddings, score new names by their embeddings):

* DeViSE (Frome et al. 2013): a linear map of the images into the text space, cosine softmax at a temperature,
  the class embeddings centred on the trained classes' mean or not;
* ridge regression of the images onto their class's embedding (Dinu et al. 2015), closed form;
* ESZSL (Romera-Paredes and Torr 2015), closed form;
* SAE's image-to-text encoder (Kodirov et al. 2017), a Sylvester equation;

and for the seen classes, a softmax linear probe on standardised features (weight decay and epochs tuned).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Fit = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]


def fit_linear(features, labels, out_dim, logits_fn, epochs=30, weight_decay=1e-4):
    torch.manual_seed(0)
    layer = torch.nn.Linear(features.shape[1], out_dim)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-3, weight_decay=weight_decay)
    for _ in range(epochs):
        for index in torch.randperm(len(features)).split(256):
            loss = F.cross_entropy(logits_fn(layer(features[index])), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return layer


def _normaliser(features):
    """Standardise by the training features' statistics, then unit length."""
    mean, std = features.mean(0), features.std(0) + 1e-6
    return lambda x: F.normalize((x - mean) / std, dim=-1)


def _centred(classes, mean=None):
    return F.normalize(classes - (classes.mean(0) if mean is None else mean), dim=-1)


def devise_map(temperature: float = 0.1, centred: bool = False) -> Fit:
    """DeViSE: images into the text space, cosine softmax at ``temperature``; ``centred``: class embeddings centred on
    the trained classes' mean (new ones on the same mean), as VSENet's ``text_config.centering``."""

    def fit(features, labels, classes):
        mean = classes.mean(0) if centred else torch.zeros(classes.shape[1])
        trained = _centred(classes, mean)
        layer = fit_linear(features, labels, classes.shape[1], lambda z: F.normalize(z, dim=-1) @ trained.T / temperature)
        return lambda x, held: F.normalize(layer(x), dim=-1) @ _centred(held, mean).T

    return fit


def fit_text_to_image(class_embeddings, features, labels, epochs=30):
    """The reverse of the DeViSE map: a linear map of the class embeddings into the image feature space, trained
    as that one is (cosine softmax, temperature 0.1, batches of 256 images)."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(class_embeddings.shape[1], features.shape[1])
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-3, weight_decay=1e-4)
    images = F.normalize(features, dim=-1)
    for _ in range(epochs):
        for index in torch.randperm(len(features)).split(256):
            loss = F.cross_entropy(images[index] @ F.normalize(layer(class_embeddings), dim=-1).T / 0.1, labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return layer


def text_to_image_map() -> Fit:
    """DEM (Zhang et al. 2017): class texts into the image feature space, trained as the DeViSE map is."""

    def fit(features, labels, classes):
        layer = fit_text_to_image(classes, features, labels)
        return lambda x, held: F.normalize(x, dim=-1) @ F.normalize(layer(held), dim=-1).T

    return fit


def ridge_map(strength: float) -> Fit:
    """Images regressed onto their class's centred embedding, in closed form; cosine to each class."""

    def fit(features, labels, classes):
        norm = _normaliser(features)
        x = norm(features)
        weights = torch.linalg.solve(x.T @ x + strength * torch.eye(x.shape[1]), x.T @ _centred(classes)[labels])
        mean = classes.mean(0)
        return lambda images, held: F.normalize(norm(images) @ weights, dim=-1) @ _centred(held, mean).T

    return fit


def eszsl_map(gamma: float, lam: float) -> Fit:
    """ESZSL: V = (X^T X + gamma I)^-1 X^T Y S (S^T S + lam I)^-1 with Y in {-1, 1}; scores x V s."""

    def fit(features, labels, classes):
        norm = _normaliser(features)
        x, s, mean = norm(features), _centred(classes), classes.mean(0)
        targets = 2 * F.one_hot(labels, len(classes)).float() - 1
        left = torch.linalg.solve(x.T @ x + gamma * torch.eye(x.shape[1]), x.T @ targets @ s)
        weights = left @ torch.linalg.inv(s.T @ s + lam * torch.eye(s.shape[1]))
        return lambda images, held: norm(images) @ weights @ _centred(held, mean).T

    return fit


def sae_map(lam: float) -> Fit:
    """SAE's encoder: W minimising ||S - W X||^2 + lam ||X - W^T S||^2, solved by eigendecomposition; images encoded
    into the text space, cosine to each class."""

    def fit(features, labels, classes):
        norm = _normaliser(features)
        mean = classes.mean(0)
        x, s = norm(features).T.double(), _centred(classes)[labels].T.double()
        a_values, a_vectors = torch.linalg.eigh(s @ s.T)
        b_values, b_vectors = torch.linalg.eigh(lam * x @ x.T)
        rotated = a_vectors.T @ ((1 + lam) * s @ x.T) @ b_vectors
        weights = (a_vectors @ (rotated / (a_values[:, None] + b_values[None, :])) @ b_vectors.T).float()
        return lambda images, held: F.normalize(norm(images) @ weights.T, dim=-1) @ _centred(held, mean).T

    return fit


# Each family's settings, all tried on the folds; the best of each family is the reference.
ZERO_SHOT_GRIDS: dict[str, dict[str, Fit]] = {
    "DeViSE": {
        f"temperature {t:g}, {'centred' if c else 'uncentred'}": devise_map(t, c)
        for t in (0.03, 0.05, 0.1, 0.2)
        for c in (False, True)
    },
    "ridge": {f"strength {s:g}": ridge_map(s) for s in (10, 30, 100, 300)},
    "ESZSL": {f"gamma {g:g}, lambda {lam:g}": eszsl_map(g, lam) for g, lam in ((10, 1), (100, 1), (100, 10), (1000, 10))},
    "SAE": {f"lambda {lam:g}": sae_map(lam) for lam in (0.2, 1, 5, 20)},
}
PROBE_GRID = [{"weight_decay": wd, "epochs": epochs} for wd in (1e-4, 1e-3, 1e-2, 1e-1) for epochs in (10, 30)]


def fit_probe(features, labels, classes: int, weight_decay: float, epochs: int):
    """A softmax linear probe on standardised, unit-length features (the scale 10 a cosine classifier needs);
    returns ``score(features)``."""
    norm = _normaliser(features)
    layer = fit_linear(norm(features), labels, classes, lambda z: 10 * z, epochs=epochs, weight_decay=weight_decay)
    return lambda x: layer(norm(x))


def stratified_split(labels: torch.Tensor, fraction: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices of a stratified ``1 - fraction`` / ``fraction`` split."""
    generator = torch.Generator().manual_seed(seed)
    keep, held = [], []
    for label in labels.unique():
        rows = (labels == label).nonzero().flatten()
        rows = rows[torch.randperm(len(rows), generator=generator)]
        cut = max(1, round(fraction * len(rows)))
        held.append(rows[:cut])
        keep.append(rows[cut:])
    return torch.cat(keep), torch.cat(held)
