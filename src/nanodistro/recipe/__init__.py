"""melange recipes: the model and what can be computed from a recipe alone.

- :mod:`.model` — ``load_recipe(path)``, ``load_recipe_text(text, where)``, ``Recipe`` and its parts
- :mod:`.update` — the ``update:`` block (``UpdateConfig``)
- :mod:`.substitute` — ``${{…}}`` mappings (``build_substitutions``) and ``substitute``
- :mod:`.conditions` — ``evaluate_condition`` for ``if:``
- :mod:`.expand` — per-architecture subpackages (``expand_subpackages``)
- :mod:`.pipelines` — ``uses:`` names and steps (``pipeline_uses_and_inputs``)
- :mod:`.lint` — ``nanodistro lint`` rules
"""
