"""VSENet's text side: the vocabulary it scores, how new names are embedded, and the seed's matrices over them.

A mixin of :class:`~visnet_hf.models.vsenet.VSENetForImageClassification`: the model holds the buffers (the
current and trained vocabularies' embeddings, their WordNet glosses, the trained mean) and the config holds
the names, texts and senses; these methods read them as :class:`~visnet_hf.zero_shot.Vocabulary` values and
write a vocabulary back when it is deliberately made the model's own (``set_classes``, ``use_vocabulary``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ... import semantics
from ...errors import warn_user
from ...text.encoder import TextEncoderError, get_text_encoder, load_tokenizer
from ...text.prompts import ClassTexts, checked_names, plain_name
from ...wordnet import fill_descriptions, senses_beside, senses_or_none
from ...zero_shot.few_shot import embed_examples, examples_by_name, fitted_photo_weight
from ...zero_shot.vocabulary import ExampleSet, TextEncoderLike, Vocabulary, build_vocabulary
from .text_tower import TowerEncoder

NAMES_CHECK_PHOTOS = 10  # with fewer photos, how often the names pick right says too little to speak of


class TextSide:
    """Vocabularies, text encoding and the seed's semantic matrices of a VSENet (see the module docstring)."""

    config: Any
    class_embeddings: torch.Tensor
    trained_class_embeddings: torch.Tensor
    text_mean: torch.Tensor
    class_example_sums: torch.Tensor | None
    text_tower: Any
    zero_shot: Any  # the ZeroShotScorer, whose feature statistics few-shot photos are compared in
    _vocabulary: Vocabulary | None

    def scored_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Text embeddings as the heads score them: centred on the trained mean (``text_config.centering``), unit length."""
        if self.config.text_config.centering:
            embeddings = embeddings - self.text_mean
        return F.normalize(embeddings, dim=-1)

    def _scored_class_embeddings(self, vocabulary: Vocabulary) -> torch.Tensor:
        """A vocabulary's embeddings as the heads score them; while the text tower's last layers train
        (LiT), the trained vocabulary's are recomputed through it."""
        if self.text_tower is None or not self.training or not vocabulary.is_trained_vocabulary:
            return self.scored_embeddings(vocabulary.embeddings.to(self.text_mean))
        embeddings = self.text_tower.embed_classes(self.vocabulary.texts, self.tokenizer())
        with torch.no_grad():  # what evaluation, export and ConSE see: the tower's latest embeddings
            self.class_embeddings.copy_(embeddings)
            self.trained_class_embeddings.copy_(embeddings)
        return self.scored_embeddings(embeddings)

    # -- vocabulary ---------------------------------------------------------------------------

    @property
    def vocabulary(self) -> Vocabulary:
        """The model's current vocabulary: ``config.class_names`` and the embeddings saved with it."""
        names = tuple(self.config.class_names)
        cached = self._vocabulary
        if cached is None or cached.names != names or cached.embeddings is not self.class_embeddings:
            config, text = self.config, self.config.text_config
            senses = senses_or_none(text.describe, names, config.class_synonyms, config.class_synsets)
            descriptions = fill_descriptions(text.describe, names, config.class_descriptions, config.class_synonyms, senses)
            counts, sums = config.class_example_counts, self.class_example_sums
            cached = self._vocabulary = Vocabulary.of(
                names,
                self.class_embeddings,
                config.trained_class_names,
                texts=ClassTexts.build(names, descriptions, text.templates, config.class_synonyms, text.average),
                synsets=senses,
                glosses=getattr(self, "class_glosses", None),
                examples=ExampleSet(sums, torch.tensor(counts, dtype=torch.float)) if counts is not None else None,
            )
        return cached

    @property
    def trained_vocabulary(self) -> Vocabulary:
        """The classes the model trained on: their names, embeddings, WordNet senses and glosses."""
        config, names = self.config, tuple(self.config.trained_class_names)
        own = tuple(config.class_names) == names  # the trained vocabulary's synonyms are at hand
        return Vocabulary.of(
            names,
            self.trained_class_embeddings,
            names,
            synsets=senses_or_none(
                config.text_config.describe, names, config.class_synonyms if own else None, config.trained_class_synsets
            ),
            glosses=getattr(self, "trained_class_glosses", None),
        )

    def vocabulary_for(
        self,
        names: Sequence[str],
        descriptions: Sequence[str | Sequence[str] | None] | None = None,
        templates: str | Sequence[str] | None = None,
        synonyms: Sequence[str | Sequence[str] | None] | None = None,
        synsets: Sequence[str | None] | None = None,
        class_embeddings: torch.Tensor | None = None,
        known: Vocabulary | None = None,
    ) -> Vocabulary:
        """``names`` embedded with this model's text encoder and text settings (arguments as
        :func:`visnet_hf.zero_shot.build_vocabulary`); the model is not changed. Names all among the model's own
        (its vocabulary's, or its trained ones), given with nothing but the model's templates, are its own rows: they
        need no text encoder, and are embedded as the model embedded them (with the descriptions, synonyms and
        WordNet ids they were given)."""
        config = self.config
        names = list(checked_names(names))
        if all(part is None for part in (descriptions, templates, synonyms, synsets, class_embeddings, known)):
            own = self._own_rows(names)
            if own is not None:
                return own
        needs_encoder = class_embeddings is None or config.zero_shot_config.prototype_glosses > 0
        return build_vocabulary(
            self.text_encoder() if needs_encoder else None,
            names,
            trained_names=config.trained_class_names,
            descriptions=descriptions,
            synonyms=synonyms,
            synsets=synsets,
            templates=templates or config.text_config.templates,
            average=config.text_config.average,
            describe=config.text_config.describe,
            embed_glosses=config.zero_shot_config.prototype_glosses > 0,
            embeddings=class_embeddings,
            width=config.embedding_dim,
            known=known,
            context_synsets=senses_beside(names, config.trained_class_names, config.trained_class_synsets),
        )

    def _own_rows(self, names: Sequence[str]) -> Vocabulary | None:
        """``names`` as rows of the model's vocabulary or of its trained one, where each is one of their names (and
        none is given twice); ``None`` otherwise. The names are compared first, so that a call for new names builds
        neither vocabulary."""
        wanted, trained = set(names), self.config.trained_class_names
        if len(wanted) != len(names):
            return None
        if wanted <= set(self.config.class_names):
            return self.vocabulary.select(names, trained)
        if wanted <= set(trained):
            return self.trained_vocabulary.select(names, trained)
        return None

    @torch.no_grad()
    def set_classes(
        self,
        names: Sequence[str],
        descriptions: Sequence[str | Sequence[str] | None] | None = None,
        templates: str | Sequence[str] | None = None,
        synonyms: Sequence[str | Sequence[str] | None] | None = None,
        synsets: Sequence[str | None] | None = None,
        class_embeddings: torch.Tensor | None = None,
        examples: Any = None,
        keep_trained: bool = False,
    ) -> Any:
        """Make ``names`` the model's vocabulary; the other arguments as :meth:`vocabulary_for`.

        Args:
            examples: a few photos of some or all of the names (few-shot): a mapping from name to a list of
                images (PIL images, paths or URLs, image files' bytes, arrays as NumPy or torch lay them out), to a
                folder of them or to a pattern of files (``"photos/lorry_*.jpg"``), a folder with a folder of photos
                per class (named as the class; of one with split folders, its train split's), a labelled file or
                anything else ``visnet extend --data`` reads, a ``datasets.Dataset`` with an image and a label column
                (streamed too; of a ``DatasetDict``, its train split), or a pandas ``DataFrame`` with such columns.
                Each name is then scored from its text and its photos together (:mod:`visnet_hf.zero_shot.few_shot`);
                the photos' features are kept in the vocabulary and saved with the model.
            keep_trained: keep what the model knows beside ``names`` (generalised use: the offset
                ``zero_shot_config.calibration`` applies, ``example_calibration`` where names carry photos, and
                its absence is said): the trained classes, and the classes added since with
                photos, with their photos (so that classes added one batch after another all stay). A name that is
                already a trained class is merged with it: it appears once, and its photos, if any, stand for it
                instead of its training images' centroid; a name added before with photos gets the new ones too.
        """
        earlier = self.vocabulary
        names = list(checked_names(names))
        self._say_near_trained(names, keep_trained)
        texts_given = class_embeddings is not None or any(any(given or ()) for given in (descriptions, synonyms, synsets))
        numbers = not texts_given and self._say_names_are_numbers(names, examples is not None)
        if keep_trained:
            names, descriptions, synonyms, synsets = self._with_known(earlier, names, descriptions, synonyms, synsets)
            if class_embeddings is not None:
                raise ValueError("keep_trained embeds the trained names with the new ones; give texts, not class_embeddings.")
        # the trained names keep their texts (above) and so their embeddings: only the new ones are encoded
        known = self.trained_vocabulary if keep_trained and templates is None else None
        vocabulary = self.vocabulary_for(names, descriptions, templates, synonyms, synsets, class_embeddings, known)
        if examples is not None:
            vocabulary = self.with_examples(vocabulary, examples)
            fitted = self.fitted_photo_weight(vocabulary)
            if fitted is not None or not keep_trained:  # else: beside the photos kept from before, their choice stays
                self.config.zero_shot_config.fitted_example_weight = fitted
            if not numbers:  # else the cause is said already
                self._say_names_read_poorly(vocabulary)
            if not keep_trained:
                self._say_trained_among_new(vocabulary)
        elif not keep_trained:
            self.config.zero_shot_config.fitted_example_weight = None  # no photos: nothing to weigh
        if keep_trained and earlier.examples is not None:  # the photos of classes added before stay with them
            kept = earlier.examples.for_names(earlier.names, vocabulary.names)
            if kept is not None:
                vocabulary = dataclasses.replace(vocabulary, examples=kept.plus(vocabulary.examples))
        if keep_trained and vocabulary.examples is not None:
            self._say_zero_shot_offset()
        return self.use_vocabulary(vocabulary)

    def _say_zero_shot_offset(self) -> None:
        """Say that trained classes beside names with photos are lowered by the zero-shot offset, when the model has
        no offset of its own for them."""
        settings = self.config.zero_shot_config
        if settings.example_calibration is None:
            warn_user(
                f"The trained classes are lowered beside the new ones by the model's zero-shot offset "
                f"({settings.calibration:g}), which leaves names with photos too low (on the Tiny-ImageNet folds the "
                "offset beside 4 photos a name is 55, against the zero-shot 14.6). Fit the offset with "
                "photos on held-out images of trained and new classes: visnet calibrate --model SAVED_FOLDER --data "
                "IMAGES_OF_BOTH (or, with none, from the training run retrained without some of its classes: "
                "--pseudo-unseen 30), or set "
                "zero_shot_config.example_calibration to visnet_hf.fit_offset(model, batches)['calibration']."
            )

    @torch.no_grad()
    def with_examples(self, vocabulary: Vocabulary, examples: Any) -> Vocabulary:
        """``vocabulary`` with example photos of some of its names (as :meth:`set_classes` takes them); the model
        is not changed."""
        by_name = examples_by_name(examples, vocabulary.names)
        if not self.zero_shot.prototypes.fitted:
            warn_user(
                "This model holds no feature statistics (a streamed run, or saved before visnet_hf kept them for every "
                "VSENet): the photos are compared on raw features, which scores lower (BENCHMARKS.md 5e). Fit them with "
                "model.fit_prototypes(batches of its training images), then give the photos again."
            )
        return dataclasses.replace(vocabulary, examples=embed_examples(self, by_name, vocabulary.names))

    @torch.no_grad()
    def fitted_photo_weight(self, vocabulary: Vocabulary) -> float | None:
        """The photo weight the photos of ``vocabulary`` (as :meth:`with_examples` reads them) choose, among the names
        that have photos (:func:`~visnet_hf.zero_shot.few_shot.fitted_photo_weight`); ``None`` where none has two, or
        the photos were not read here (a saved vocabulary keeps only their sums)."""
        examples = vocabulary.examples
        if examples is None or examples.photos is None:
            return None
        features, rows = (part.to(self.device) for part in examples.photos)
        named = [row for row, count in enumerate(examples.counts.tolist()) if count > 0]
        column = torch.full((len(vocabulary),), -1, dtype=torch.long, device=self.device)
        column[named] = torch.arange(len(named), device=self.device)
        names_alone = vocabulary.select([vocabulary.names[row] for row in named], self.config.trained_class_names)
        settings = self.config.zero_shot_config.updated(score_temperature=1.0)  # the sum the photos' score is added to
        scores = torch.cat(
            [
                self(image_features=batch, vocabulary=names_alone, zero_shot_config=settings).logits
                for batch in features.split(256)
            ]
        )
        return fitted_photo_weight(
            scores,
            features,
            column[rows],
            ExampleSet(examples.sums[named], examples.counts[named]),
            self.zero_shot.prototypes,
            settings.example_shrinkage,
            self.logit_scale_value(),
            settings.example_threshold,
        )

    def _say_names_are_numbers(self, names: Sequence[str], with_photos: bool) -> bool:
        """Say when every new name is a number (class folders ``0/``, ``1/``, ... as a dataset exported by index
        leaves them), which tells the text encoder nothing of what the class shows; whether it was said."""
        trained = set(self.config.trained_class_names)
        new = [name for name in names if name not in trained]
        if not new or not all(name.strip().isdigit() for name in new):
            return False
        shown = ", ".join(new[:5]) + (", ..." if len(new) > 5 else "")
        scored = "only the photos tell them apart" if with_photos else "they are scored as if at random"
        warn_user(
            f"The new classes are named by numbers ({shown}), which say nothing of what they show: {scored}. Name each "
            "class by what it shows (a folder zebra/ instead of 0/, or a label column of names), or give its words as "
            "synonyms."
        )
        return True

    @torch.no_grad()
    def _say_names_read_poorly(self, vocabulary: Vocabulary) -> None:
        """Say when the names alone pick the right class for the photos given no more often than chance would: the
        model reads these names poorly (another domain than it trained on, a below-chance names' score), so they add
        little to the photos, or take from them, and with one or two photos a class the photos alone may score higher."""
        examples = vocabulary.examples
        if examples is None or examples.photos is None or len(examples.photos[1]) < NAMES_CHECK_PHOTOS:
            return
        features, rows = examples.photos
        names_alone = dataclasses.replace(vocabulary, examples=None)
        right = 0
        for batch, labels in zip(features.split(256), rows.split(256), strict=True):
            logits = self(image_features=batch.to(self.device), vocabulary=names_alone).logits
            right += int((logits.argmax(-1).cpu() == labels).sum())
        chance = 1 / len(vocabulary.names)
        if right / len(rows) <= chance:
            heavier = " ".join(f"{factor * self.config.zero_shot_config.photo_weight():g}" for factor in (2, 4))
            warn_user(
                f"The names alone pick the right class for {right} of the {len(rows)} photos given ({right / len(rows):.0%}; "
                f"chance: {chance:.0%}): this model reads these names poorly, so the photos carry the scores, and with one "
                "or two photos a class the photos alone may score higher. Measure both on held-out photos of your classes, "
                f"and heavier photo weights (visnet extend --example-weight) beside the model's own: python "
                f"benchmarks/bench_fewshot_yours.py --model MODEL --data PHOTOS --example-weights {heavier}."
            )

    def with_own_examples(self, vocabulary: Vocabulary) -> Vocabulary:
        """``vocabulary`` with the photos this model holds (few-shot, saved with it) for those of its names that have
        them: names that come in another order, or with others (a data file, the pipeline's labels, the page), are
        scored as the model's own vocabulary scores them. A vocabulary given its own photos is returned as it is."""
        own = self.vocabulary
        if own.examples is None or vocabulary.examples is not None:
            return vocabulary
        with_photos = [name for name, count in zip(own.names, own.examples.counts.tolist(), strict=True) if count]
        near = _written_otherwise(vocabulary.names, with_photos, own.names)
        if near:
            warn_user(
                f"{near} differ from names this model holds photos of only in case or spacing: each is scored by its "
                "name alone, without those photos. Name it as the model does to have them."
            )
        return dataclasses.replace(vocabulary, examples=own.examples.for_names(own.names, vocabulary.names))

    def _say_near_trained(self, names: Sequence[str], keep_trained: bool) -> None:
        """Say which names are a trained class's written otherwise ("Cat" for "cat", "golden_retriever" for "golden
        retriever"): each is scored as a new name (beside the trained one where ``keep_trained`` keeps it), not as the
        trained class, unless it is named as the trained class is."""
        trained = self.config.trained_class_names
        near = _written_otherwise(names, trained, trained)
        if near:
            where = "scored here as a class of its own, beside the trained one" if keep_trained else "scored here as a new name"
            warn_user(
                f"{near} differ from trained classes only in case or spacing; each is {where}, not as the trained class. "
                "To have it scored as the trained class, name it as the trained class is named."
            )

    def _say_trained_among_new(self, vocabulary: Vocabulary) -> None:
        """Say which of a few-shot vocabulary's names are classes the model trained on (they are scored as such)."""
        trained = [name for name, is_trained in zip(vocabulary.names, vocabulary.trained.tolist(), strict=True) if is_trained]
        if trained and len(trained) < len(vocabulary):
            warn_user(
                f"{trained} are already trained classes: each is scored as a trained class beside the new names (less "
                "the offset zero_shot_config.calibration), by the photos given for it, else by its training images' "
                "centroid; with keep_trained=True (--keep-trained) every trained class stays beside the new ones."
            )

    def _with_known(self, current: Vocabulary, names, descriptions, synonyms, synsets) -> tuple[list[str], Any, Any, Any]:
        """The trained names, then those of the ``current`` vocabulary added since with photos, then the new ones (a
        name known already is kept once, and said), with each list of per-name texts extended to match (the known
        names' own where the config holds them)."""
        config = self.config
        trained = list(config.trained_class_names)
        is_trained = set(trained)
        counts = current.examples.counts.tolist() if current.examples is not None else [0] * len(current)
        added = [name for name, count in zip(current.names, counts, strict=True) if count > 0 and name not in is_trained]
        known, is_added = trained + added, set(added)
        again = [name for name in names if name in is_trained]
        if again:
            warn_user(
                f"{again} are already trained classes: each is kept once, as the trained class; the photos given "
                "for it stand for it instead of its training images' centroid."
            )
        if added:
            repeated = [name for name in names if name in is_added]
            warn_user(
                f"Kept the {len(added)} classes added before with photos ({', '.join(added[:5])}"
                f"{', ...' if len(added) > 5 else ''}) beside the trained ones"
                + (f"; {repeated} get the new photos beside their earlier ones." if repeated else ".")
            )
        new = [i for i, name in enumerate(names) if name not in is_trained | is_added]

        def extended(given: Sequence[Any] | None, current_texts: Sequence[Any] | None, trained_rows: Sequence[Any] | None = None):
            by_name = dict(zip(config.class_names, current_texts, strict=True)) if current_texts is not None else {}
            if trained_rows is not None:
                by_name = {**by_name, **dict(zip(trained, trained_rows, strict=True))}
            if given is None and not by_name:
                return None
            head = [by_name.get(name) for name in known]
            return head + ([given[i] for i in new] if given is not None else [None] * len(new))

        return (
            known + [names[i] for i in new],
            extended(descriptions, config.class_descriptions),
            extended(synonyms, config.class_synonyms),
            extended(synsets, config.class_synsets, config.trained_class_synsets),
        )

    @torch.no_grad()
    def use_vocabulary(self, vocabulary: Vocabulary) -> Any:
        """Make ``vocabulary`` the model's own: its names become ``config.class_names`` / ``id2label`` and its
        embeddings the model's buffers, so that it is saved with the model."""
        config, texts, like = self.config, vocabulary.texts, self.text_mean  # the buffers' device and dtype
        if hasattr(self, "class_glosses"):
            if vocabulary.glosses is None:
                raise ValueError(
                    "This model scores WordNet glosses (prototype_glosses); build the vocabulary with model.vocabulary_for."
                )
            self.class_glosses = vocabulary.glosses.to(like)
        self.class_embeddings = vocabulary.embeddings.to(like)
        examples = vocabulary.examples
        self.class_example_sums = examples.sums.to(like) if examples is not None else None
        config.class_example_counts = [int(count) for count in examples.counts] if examples is not None else None
        self._vocabulary = None  # the view is rebuilt from what was just written
        config.class_names = list(vocabulary.names)
        config.class_descriptions = [list(d) for d in texts.descriptions] if texts and texts.descriptions else None
        config.class_synonyms = [list(s) for s in texts.synonyms] if texts and texts.synonyms else None
        config.class_synsets = list(vocabulary.synsets) if vocabulary.synsets is not None else None
        if texts is not None:
            config.text_config.templates = list(texts.templates)
        config.id2label = dict(enumerate(config.class_names))
        config.label2id = {name: index for index, name in enumerate(config.class_names)}
        return self

    def text_encoder(self) -> TextEncoderLike:
        """What embeds class texts for this model: its own trained tower when it has one, else the (cached)
        encoder its config names (or a copy bundled in its folder)."""
        if self.text_tower is not None:
            return TowerEncoder(self.text_tower, self.tokenizer())
        return get_text_encoder(self.text_encoder_path(), self.config.text_config.pooling)

    def text_encoder_path(self) -> str:
        """A copy bundled in the folder the model was loaded from (``visnet bundle-text-encoder``), else
        ``text_config.encoder`` (a Hub id or a path)."""
        bundled = Path(self.config.name_or_path or "") / "text_encoder"
        return str(bundled) if (bundled / "config.json").exists() else self.config.text_config.encoder

    def tokenizer(self) -> Any:
        """The text encoder's tokenizer (what ``save_pretrained`` writes beside the weights for pipelines); where the
        encoder cannot be loaded, the copy saved beside the weights, which reads the pipeline's labels back."""
        try:
            return load_tokenizer(self.text_encoder_path())
        except TextEncoderError:
            saved = Path(self.config.name_or_path or "")
            if not (saved / "tokenizer_config.json").exists():
                raise
            return load_tokenizer(str(saved))

    # -- the seed's semantic matrices (section 4.1) --------------------------------------------

    def normalized_class_embeddings(self) -> torch.Tensor:
        """The current vocabulary's embeddings as the heads score them."""
        return self.scored_embeddings(self.class_embeddings)

    def class_centres(self) -> torch.Tensor:
        """Mean-centred class centres of the current vocabulary."""
        return semantics.class_centres(self.normalized_class_embeddings())

    def class_distances(self) -> torch.Tensor:
        """``D_ij = ||c_i - c_j||^2`` between class centres."""
        return semantics.class_distances(self.normalized_class_embeddings())

    def class_similarity(self, gamma: float | None = None) -> torch.Tensor:
        """The RBF-softmax similarity ``S`` (columns sum to one), bandwidth ``gamma`` (default: config)."""
        return semantics.class_similarity(self.normalized_class_embeddings(), gamma or self.config.gamma)

    def association(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """The visual-semantic association matrix ``A`` (cosines, ``(B, K)``) for a batch's ``image_embeds``."""
        return semantics.association(image_embeds, self.class_embeddings)


def _written_otherwise(names: Sequence[str], known: Sequence[str], taken: Sequence[str]) -> dict[str, str]:
    """``{name: known name}`` for each of ``names`` that is one of ``known`` written otherwise (case, underscores,
    spacing) and not itself one of ``taken``."""
    spelled = {plain_name(name): name for name in known}
    return {name: spelled[plain_name(name)] for name in names if name not in taken and plain_name(name) in spelled}
