"""The one place the platform image is named.

``ctloop pipeline compile`` sets ``CTLOOP_PLATFORM_IMAGE`` (from the settings' image and the git
SHA) before it imports the components, so every compiled task runs the image built from the
same commit. Locally, ``kfp.local`` runs the same functions in the platform venv.
"""

import os

PLATFORM_IMAGE = os.environ.get("CTLOOP_PLATFORM_IMAGE", "ghcr.io/ctloop/platform:dev")
