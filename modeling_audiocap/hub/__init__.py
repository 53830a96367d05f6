"""Publishing a run: its model card and the upload (toolkit; saved models do not carry it).

- `cards`: `render_genre_card` / `render_caption_card` write a run's `README.md` from its results, with the templates
  of the repository's `model_cards/` (installed inside the package);
- `push`: `take_hub_settings` takes `--push_to_hub` out of the Trainer's hands, `push_folder` uploads the finished run;
- `cli`: `audiocap-push`, the same upload from the command line.
"""

from .cards import package_versions, render_caption_card, render_catalogue_card, render_genre_card
from .push import HubSettings, push_folder, take_hub_settings

__all__ = [
    "HubSettings",
    "package_versions",
    "push_folder",
    "render_caption_card",
    "render_catalogue_card",
    "render_genre_card",
    "take_hub_settings",
]
