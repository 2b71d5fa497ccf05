"""Write RUN/report.md and RUN/report.html for a chain's run folder (make demo, make fer2013).

    python pipelines/report.py run=runs/demo
    python pipelines/report.py run=runs/fer2013 split=val title="pfvit on FER2013"

Reads RUN/<stage>/eval_<split>/metrics.json of vit, pfvit, poster_pp and poster_var (whichever exist), their
checkpoints (parameters; images/s measured here) and the stages' PNGs.
"""

import sys

from pfvit.config import parse_stage_args
from pfvit.errors import cli_entry
from pfvit.report import ReportConfig, write_report


@cli_entry
def main(argv=None) -> int:
    md, page = write_report(parse_stage_args(ReportConfig, argv, __doc__))
    print(f"wrote {md} and {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
