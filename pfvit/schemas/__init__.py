"""The stages' config schemas: typed dataclasses with defaults and one comment per key (what ``--help`` prints).
Nothing here imports torch, so that ``--help``, ``--print-config`` and a bad key answer at once."""
