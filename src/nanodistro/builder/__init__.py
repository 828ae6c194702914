"""The package builder: melange recipes -> signed, reproducible APKs, built hermetically.

Modules (each with one job):

- :mod:`.compile` — recipe + arch -> flat substituted steps (``compile_recipe``,
  ``builtin_pipeline_names``, ``load_pipeline``); built-in pipelines are YAML in ``pipelines/``
- :mod:`.sources` / :mod:`.cache` — fetch, git-checkout, patch outside the sandbox; source cache
- :mod:`.runners` — sandbox runners (``bubblewrap``) and the toolchain configuration
- :mod:`.environment` — sandbox roots assembled from resolved packages
- :mod:`.sca` / :mod:`.sbom` / :mod:`.package` — automatic deps, SPDX SBOM, ``.apk`` emission
- :mod:`.orchestrate` — one recipe's whole sequence (``build_recipe``, ``test_recipe``); :mod:`.config`
  (``BuildConfig``, ``BuildResult``), :mod:`.order` (``build_order``), :mod:`.publishing`
  (``build_recipes``: several recipes, each published through the consistency gate),
  :mod:`.recipeinfo` (recipe hash, git commit time, already-published builds)

Submodules are imported lazily by their users; this package imports nothing heavy itself.
"""
