"""The published CRM contract: generated from the models, frozen per version, mapped to
Salesforce names; a change of names without a new version fails here."""

from __future__ import annotations

import copy
import hashlib
import json

from typer.testing import CliRunner

from submissions_pipeline.cli import app
from submissions_pipeline.crm import CrmStatus, contract
from submissions_pipeline.crm.salesforce_mapping import SalesforceMapping

#: SHA-256 of each published contract file. A published version never changes: a new set of
#: names is a new version (contracts/crm-v{N}.json) with its digest added here.
PUBLISHED = {
    1: "fb79613c155e1ee7c74354cf503bde4464d6c1dd739d30499f66638d89705ec2",
    2: "0c0b7e57a5ba77629d5e30d453b1a9652c73cff91056e76c5dc8e6e1563662e9",
}


def test_the_models_match_the_published_contract_of_their_version():
    problems = contract.drift(contract.contract(), contract.published())
    assert problems == [], (
        f"the models changed the CRM contract without a version bump: {problems}; bump "
        "contract.VERSION and publish contracts/crm-v{N}.json (`submissions contract`)"
    )


def test_published_versions_are_frozen():
    for version, digest in PUBLISHED.items():
        text = contract.published_path(version).read_bytes()
        assert hashlib.sha256(text).hexdigest() == digest, f"crm-v{version}.json was edited"
    assert contract.VERSION in PUBLISHED


def test_an_enum_changed_without_a_version_bump_is_named():
    changed = copy.deepcopy(contract.contract())
    changed["statuses"]["on_hold"] = {"written_by_automation": True}
    del changed["reason_codes"]["site_timeout"]
    changed["reason_codes"]["case_invalid"] = "site_flake"

    problems = contract.drift(changed, contract.published())

    assert problems == [
        "reason_codes: 'site_timeout' removed",
        "reason_codes: 'case_invalid' changed from 'invalid_data' to 'site_flake'",
        "statuses: 'on_hold' added",
    ]


def test_the_markdown_table_is_the_published_json_rendered():
    doc = contract.published()
    md = (contract.CONTRACTS_DIR / f"crm-v{contract.VERSION}.md").read_text()
    assert md == contract.render_markdown(doc)
    assert all(f"| `{s.value}` |" in md for s in CrmStatus)


def test_the_salesforce_mapping_names_every_field_and_status_of_the_contract():
    mapping = SalesforceMapping.load()
    assert mapping.problems() == []
    broken = mapping.model_copy(update={"statuses": {**mapping.statuses}})
    del broken.statuses["needs_review"]
    assert broken.problems() == ["statuses: no Salesforce name for 'needs_review'"]


def test_submissions_contract_prints_the_contract_and_checks_it():
    result = CliRunner().invoke(app, ["contract", "--check"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == contract.published()
    md = CliRunner().invoke(app, ["contract", "--markdown"])
    assert md.output.startswith(f"# CRM field contract, version {contract.VERSION}")
