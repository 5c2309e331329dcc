"""Loading, model cards and sharing, each in its own module; their public names are here.

* :mod:`.loading`: a saved model (folder or Hub id) and the files beside it.
* :mod:`.cards`: the model card rendered from ``hub_cards/`` and the folder's own files.
* :mod:`.sharing`: ``push_to_hub`` of a folder, timm export of the backbone, an offline text-encoder bundle.
"""

from .cards import render_card, write_card
from .loading import EVAL_RESULTS, MODEL_FILES, TEXT_ENCODER_DIR, TRAINING_CONFIG, is_repo_id, load_model, model_file, read_config
from .sharing import bundle_text_encoder, export_timm_backbone, make_api, push_model, unportable_text_encoder

__all__ = [
    "EVAL_RESULTS",
    "MODEL_FILES",
    "TEXT_ENCODER_DIR",
    "TRAINING_CONFIG",
    "bundle_text_encoder",
    "export_timm_backbone",
    "is_repo_id",
    "load_model",
    "make_api",
    "model_file",
    "push_model",
    "read_config",
    "render_card",
    "unportable_text_encoder",
    "write_card",
]
