"""kopf registrations. Thin: every decision lives in pure modules.

Importing this module registers the handlers with kopf's default registry.
"""

from typing import Any

import kopf

from edge_operator import names


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # kopf keeps its bookkeeping (handler progress, last-handled state) in annotations
    # under our own prefix, and only on EdgeGateways: Nodes are never handled by kopf.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = names.FINALIZER
    settings.posting.level = 20  # logging.INFO: Events for changes and refusals, not debug chatter
