"""The package builder: melange recipes -> signed, reproducible APKs, built hermetically.

Modules (each with one job):

- :mod:`.compile` — recipe + arch -> flat substituted steps (``compile_recipe``,
  ``builtin_pipeline_names``, ``load_pipeline``); built-in pipelines are YAML in ``pipelines/``
- :mod:`.sources` / :mod:`.cache` — fetch, git-checkout, patch outside the sandbox; source cache
- :mod:`.runners` — sandbox runners (``bubblewrap``) and the toolchain configuration
- :mod:`.environment` — sandbox roots assembled from resolved packages
- :mod:`.sca` / :mod:`.sbom` / :mod:`.package` — automatic deps, SPDX SBOM, ``.apk`` emission
- :mod:`.orchestrate` — the whole sequence (``build_recipe``, ``build_recipes``, ``test_recipe``)

Submodules are imported lazily by their users; this package imports nothing heavy itself.
"""
