"""Static files in production: hashed and compressed names from collectstatic's manifest (ES module imports
rewritten to them too), or plain ones without it."""

from __future__ import annotations

import logging

from whitenoise.storage import CompressedManifestStaticFilesStorage

log = logging.getLogger(__name__)


class StaticStorage(CompressedManifestStaticFilesStorage):
    """Whitenoise's manifest storage, with two changes.

    - The pages are native ES modules (no build step): `import ... from "./api.js"` must name the hashed file
      too, or a module would load a stale copy of another after a deploy.
    - With no manifest at all, pages link the plain names. The manifest storage answers every {% static %} with
      an error until collectstatic has run, so `manage.py runserver` without DJANGO_DEBUG=1 served 500s;
      settings then let whitenoise serve the apps' files. collectstatic itself is unchanged.
    """

    support_js_module_import_aggregation = True

    def stored_name(self, name):
        if not self.hashed_files:
            if not getattr(self, "_warned", False):
                self._warned = True
                log.warning(
                    "No static files manifest in %s: serving the apps' files unhashed (run `manage.py collectstatic` "
                    "for hashed, compressed files cached for a year).",
                    self.location,
                )
            return name
        return super().stored_name(name)
