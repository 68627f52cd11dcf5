r"""training: the DataSpec consumer — a lazy PyTorch loader and the CLOSURE-Lite model.

    python -m training --json_dir PAGES --image_root IMAGES --output_dir RUN
    python -m training.evaluate --checkpoint RUN/best.pt --json_dir PAGES --image_root IMAGES \
        --report report.json
    python -m training.embed --checkpoint RUN/best.pt --json_dir PAGES --image_root IMAGES \
        --output_dir EMB

Page discovery, image resolution, box and text normalization and reading order all come
from `dataspec`; this package has none of its own.
"""

__all__: list[str] = []
