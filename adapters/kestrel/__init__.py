"""Kestrel Trucks (WarrantyNet): sessions that expire, and a required supporting document."""

from adapters.base import TemplatedPortalAdapter
from submissions_pipeline.domain import Case


class KestrelAdapter(TemplatedPortalAdapter):
    """Kestrel wants the repair order attached as a PDF-named document."""

    oem = "kestrel"

    def document_for(self, case: Case) -> dict:
        doc = super().document_for(case)
        return {**doc, "name": f"RO-{case.case_id}.txt"}
