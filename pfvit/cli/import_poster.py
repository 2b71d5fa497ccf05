"""Import a released POSTER++ (Talented-Q/POSTER_V2) or POSTER-Var (lg2578/poster-var) checkpoint.

    python pipelines/import_poster.py checkpoint=rafdb_best.pth out=runs/imported/poster_pp_rafdb variant=poster++ \
        labels=rafdb
    python pipelines/evaluate.py checkpoint=runs/imported/poster_pp_rafdb shards=shards/rafdb split=test

Keys lose their `module.` prefix and are renamed to pfvit's layout; the parameters the release builds but never
uses are listed, not loaded; every tensor the model needs must be present (a partial match is an error). The
head is re-ordered from the release's class order (labels: rafdb, affectnet7, affectnet8, or comma-separated
names) into pfvit's canonical order. Files that need pickles beyond tensors are refused (re-save the state dict).
The positional spelling of earlier releases (`import_poster.py FILE OUT --variant …`) still works, with a
deprecation line.
"""

from ..config import parse_stage_args, require
from ..errors import cli_entry
from ..schemas.imports import IMPORT_LEGACY, PosterImportConfig


@cli_entry
def main(argv=None) -> int:
    cfg = parse_stage_args(PosterImportConfig, argv, __doc__, legacy=IMPORT_LEGACY)
    require(cfg, "checkpoint", "out")
    # Imported after the parsing, so that --help, --print-config and a bad key answer without loading torch.
    from ..labels import RELEASED_LABEL_ORDERS
    from ..models.poster.weights import import_released_poster

    order = RELEASED_LABEL_ORDERS.get(cfg.labels) or tuple(n.strip() for n in cfg.labels.split(","))
    report = import_released_poster(cfg.checkpoint, cfg.out, cfg.variant, order)
    print(f"{cfg.checkpoint}: loaded {report['loaded']} tensors, left {report['unused']} unused "
          f"({', '.join(report['unused_examples'])}); wrote {cfg.out}")
    return 0
