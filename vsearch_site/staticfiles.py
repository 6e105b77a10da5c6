"""Static files in production: hashed names (cached forever), compressed copies, and rewritten ES module imports."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    # The pages are native ES modules (no build step): `import ... from "./api.js"` must name the hashed file too,
    # or a module would load a stale copy of another after a deploy.
    support_js_module_import_aggregation = True
