"""A JSON patch that moves a live SeldonDeployment's model containers to a new serving image.

Once the pipeline's deploy step owns a SeldonDeployment's ``spec.predictors`` (it server-side
applies the model URI, version labels and canary), re-applying the overlay's copy would put the
placeholder model back (``predictors`` is one list, replaced whole). ``scripts/deploy_overlay.sh``
therefore applies everything else from the overlay and moves only the image, with this patch:
for every predictor and component, the container named ``model`` gets the overlay's image; a
``test`` operation guards each replacement against a concurrent change. The model stays.

Usage: ``kubectl get seldondeployment NAME -o json | python scripts/seldon_image_patch.py IMAGE``
prints the patch (``[]`` when every model container already runs IMAGE).
"""

from __future__ import annotations

import json
import sys
from typing import Any

CONTAINER = "model"


class PatchError(ValueError):
    """The object has no container to patch."""


def image_patch(sdep: dict[str, Any], image: str, container: str = CONTAINER) -> list[dict[str, Any]]:
    """JSON-patch operations setting ``image`` on each ``container`` of every predictor.

    Raises:
        PatchError: no predictor has a container named ``container``.
    """
    ops: list[dict[str, Any]] = []
    found = 0
    for i, predictor in enumerate(sdep.get("spec", {}).get("predictors") or []):
        for j, component in enumerate(predictor.get("componentSpecs") or []):
            for k, spec in enumerate((component.get("spec") or {}).get("containers") or []):
                if spec.get("name") != container:
                    continue
                found += 1
                if spec.get("image") != image:
                    path = f"/spec/predictors/{i}/componentSpecs/{j}/spec/containers/{k}/image"
                    ops += [
                        {"op": "test", "path": path, "value": spec.get("image")},
                        {"op": "replace", "path": path, "value": image},
                    ]
    if not found:
        name = sdep.get("metadata", {}).get("name")
        raise PatchError(f"SeldonDeployment {name} has no container named {container!r} in any predictor")
    return ops


def main(argv: list[str] | None = None) -> int:
    """Command line: the live object on stdin, the image as argument, the patch on stdout."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: kubectl get sdep NAME -o json | seldon_image_patch.py IMAGE", file=sys.stderr)
        return 2
    try:
        print(json.dumps(image_patch(json.load(sys.stdin), args[0])))
    except (PatchError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
