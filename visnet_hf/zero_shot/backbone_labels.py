"""The backbone's own pretrained labels as a further names' expert: ConSE over its ImageNet classifier.

A timm backbone pretrained on ImageNet comes with the classifier it was trained with, and that classifier's labels
are words. ConSE (Norouzi et al., 2014) was defined on exactly that: the classifier's most probable labels' text
embeddings, mixed by probability, place the image among words, and its cosine to a new name scores the name. A
VSENet trains heads of its own and drops that classifier; created with ``zero_shot_config.backbone_label_weight``
above 0 it keeps it here, with its labels embedded once as the model embeds a class (its templates, WordNet
descriptions), and the zero-shot scorer adds this expert at that weight. The backbone must stay as it was
pretrained (``optim.freeze: backbone``) for the classifier to read its features.

A name that is itself one of the labels (the same WordNet sense, or the same name) is left out of the mix: the
expert scores every name as one the classifier never learned, through the labels it did learn (a new dog breed
through the other breeds), which is what it was measured on (studies/few_shot/IMAGENET_HEAD.md) and what a user's
new class gets. A label left in would make the expert an ImageNet classifier for that name, far surer than for the
names beside it.

``zero_shot_config.backbone_classifier_weight`` reads the same classifier the other way round, as the visual
prototypes read the trained classes' centroids: each name borrows a classifier from the labels its text resembles
and, where its WordNet sense is known, the labels near it in WordNet (:meth:`BackboneLabels.borrowed`: the labels'
logits, standardised per image, mixed by the softmax over the labels of :data:`BORROWING_SHARPNESS` x the text
cosine plus ``backbone_classifier_hierarchy`` x the Wu-Palmer similarity of the senses; a convex combination of known
classifiers, as in Changpinyo et al., 2016, "Synthesized classifiers for zero-shot learning"), the vocabulary's own
labels left out likewise. The hierarchy keeps a name from borrowing from labels that only sound like it ("cardigan"
from "cardoon": studies/few_shot/WORDNET_LENDERS.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch
import torch.nn as nn

from .._torch import upcast
from ..errors import ConfigError
from ..wordnet import hierarchy_similarity
from .conse import conse_logits


class BackboneLabels(nn.Module):
    """The backbone's pretrained classifier (``weight``, ``bias``) and its labels' embeddings as the model scores
    them (``embeddings``: unit, centred as the model centres), with the labels' names and WordNet ids."""

    weight: torch.Tensor
    bias: torch.Tensor
    embeddings: torch.Tensor

    def __init__(self, names: Sequence[str], synsets: Sequence[str | None], num_features: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(len(names), num_features))
        self.register_buffer("bias", torch.zeros(len(names)))
        self.register_buffer("embeddings", torch.zeros(len(names), dim))
        self.synsets = tuple(synsets)
        self._rows: dict[str, list[int]] = {}
        for row, (name, synset) in enumerate(zip(names, synsets, strict=True)):
            for key in {name.casefold(), synset}:
                if key:
                    self._rows.setdefault(key, []).append(row)

    def own_labels(self, names: Sequence[str], synsets: Sequence[str | None] | None) -> list[int]:
        """The labels that are ``names`` themselves: the same WordNet sense, or the same name (any case)."""
        keys = [name.casefold() for name in names] + [synset for synset in synsets or () if synset]
        return sorted({row for key in keys for row in self._rows.get(key, ())})

    def forward(
        self,
        visual: torch.Tensor,
        classes: torch.Tensor,
        masked: Sequence[int],
        scale: torch.Tensor,
        top_k: int,
    ) -> torch.Tensor:
        """``(B, K)`` scaled cosines of the images' ConSE embeddings over the labels (the ``masked`` rows left out)
        to the ``classes``' embeddings as the model scores them."""
        visual = upcast(visual)  # a model loaded in half precision holds its buffers in it too
        logits = visual @ self.weight.to(visual.dtype).T + self.bias.to(visual.dtype)
        if masked:
            logits = logits.index_fill(-1, torch.tensor(list(masked), device=logits.device), float("-inf"))
        return conse_logits(logits, self.embeddings, classes, scale, top_k)

    def borrowed(
        self,
        visual: torch.Tensor,
        classes: torch.Tensor,
        masked: Sequence[int],
        scale: torch.Tensor,
        senses: Sequence[str | None] | None = None,
        hierarchy: float = 0.0,
    ) -> torch.Tensor:
        """``(B, K)`` each name's classifier borrowed from the labels': the images' logits, standardised over the
        labels, mixed by :meth:`lenders` (the ``masked`` labels left out of both), at the logit ``scale`` / 10 (a
        standardised logit is worth about a tenth of the scale's cosines)."""
        kept = torch.ones(len(self.bias), dtype=torch.bool, device=self.bias.device)
        kept[list(masked)] = False
        visual = upcast(visual)
        logits = visual @ self.weight[kept].to(visual.dtype).T + self.bias[kept].to(visual.dtype)
        logits = (logits - logits.mean(-1, keepdim=True)) / logits.std(-1, keepdim=True)
        return scale / 10 * logits @ self.lenders(classes, masked, senses, hierarchy)[:, kept].T

    def lenders(
        self, classes: torch.Tensor, masked: Sequence[int], senses: Sequence[str | None] | None = None, hierarchy: float = 0.0
    ) -> torch.Tensor:
        """``(K, labels)`` how much each name borrows from each label: the softmax over the labels of
        :data:`BORROWING_SHARPNESS` x the name's text cosine to each, plus ``hierarchy`` x the Wu-Palmer similarity
        of the name's WordNet sense (``senses``, the vocabulary's; None or a name without one: the text alone) to the
        label's, the ``masked`` labels at 0."""
        classes = upcast(classes)
        mix = BORROWING_SHARPNESS * (classes @ self.embeddings.to(classes.dtype).T)
        if hierarchy > 0 and senses is not None and any(senses):
            mix = mix + hierarchy * hierarchy_similarity(tuple(senses), self.synsets).to(mix)
        if masked:
            mix = mix.index_fill(-1, torch.tensor(list(masked), device=mix.device), float("-inf"))
        return mix.softmax(-1)


# How sharply a name's borrowed classifier picks the labels its text resembles: the softmax over the labels of this
# times the text cosine (20 of 10, 20 and 50 on the Tiny-ImageNet folds: studies/few_shot/LABEL_PROTOTYPES.md).
BORROWING_SHARPNESS = 20.0


def pretrained_labels(backbone: nn.Module) -> tuple[list[str], list[str | None]]:
    """The names and WordNet ids of a timm backbone's pretrained classifier's labels (ImageNet-1k, -12k, -21k, as
    its pretrained config says): each label's first name, with its second where another label has the same first
    ('crane' the bird and 'crane' the machine), and its id where even that repeats.

    Raises:
        ConfigError: a backbone whose classifier timm does not know as an ImageNet one.
    """
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset(backbone)  # None unless its pretrained tag and its classifier's size agree
    classifier = getattr(backbone, "get_classifier", lambda: None)()
    outputs = classifier.out_features if isinstance(classifier, nn.Linear) else 0
    if subset is None or outputs != ImageNetInfo(subset).num_classes():
        tag = getattr(backbone, "pretrained_cfg", {}).get("tag")
        raise ConfigError(
            "zero_shot_config.backbone_label_weight and backbone_classifier_weight need a backbone pretrained on "
            f"ImageNet with its linear classifier, whose labels timm knows; {type(backbone).__name__} (tag {tag}) has a "
            f"classifier of {outputs} outputs and no ImageNet labels timm knows for it. Set both to 0, or pick an "
            "ImageNet-pretrained backbone (a tag such as .in1k) with its classifier."
        )
    info = ImageNetInfo(subset)
    synsets: list[str | None] = list(info.label_names())
    lemmas = [description.split(", ") for description in info.label_descriptions()]
    firsts = Counter(parts[0] for parts in lemmas)
    names = [parts[0] if firsts[parts[0]] == 1 else ", ".join(parts[:2]) for parts in lemmas]
    twice = Counter(names)
    names = [name if twice[name] == 1 else f"{name} ({synset})" for name, synset in zip(names, synsets, strict=True)]
    return names, synsets


__all__ = ["BackboneLabels", "pretrained_labels"]
