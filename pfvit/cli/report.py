"""Write RUN/report.md and RUN/report.html for a chain's run folder (make demo, make fer2013).

    python pipelines/report.py run=runs/demo
    python pipelines/report.py run=runs/fer2013 split=val title="pfvit on FER2013"

Reads RUN/<stage>/eval_<split>/metrics.json of vit, pfvit, poster_pp and poster_var (whichever exist), their
checkpoints (parameters; images/s measured here) and the stages' PNGs.
"""

from ..config import parse_stage_args
from ..errors import cli_entry
from ..schemas.report import ReportConfig


@cli_entry
def main(argv=None) -> int:
    cfg = parse_stage_args(ReportConfig, argv, __doc__)
    # Imported after the parsing, so that --help, --print-config and a bad key answer without loading torch.
    from ..report import write_report

    md, page = write_report(cfg)
    print(f"wrote {md} and {page}")
    return 0
