"""Selector files are checked when loaded: a mistake names the file, the JSON path and the key."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import adapters
from adapters.selectors import SelectorFileError, load_selector_set, load_selector_sets

MINIMAL = {
    "oem": "acme",
    "ui_version": "v1",
    "reference_regex": "Claim (?P<ref>AC-\\d{6})",
    "paths": {"login": "/login", "form": "/claims/new"},
    "login": {
        "fields": {"username": {"label": "User"}, "password": {"label": "Password"}},
        "submit": {"role": "button", "name": "Sign in"},
    },
    "logged_in": {"role": "link", "name": "Sign out"},
    "steps": [{"fields": {"mileage": {"label": "Mileage"}}}],
    "review": {"submit": {"role": "button", "name": "Send"}},
    "confirmation_reference": {"locator": {"role": "link", "name": "View"}, "attribute": "href"},
}


def write(folder: Path, data: dict, name: str = "v1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def test_a_portal_without_search_lookup_or_version_marker_needs_no_dummy_sections(tmp_path):
    sel = load_selector_set(write(tmp_path, MINIMAL))
    assert sel.search is None and sel.lookup is None and sel.fingerprint is None
    assert sel.start_path == "/claims/new"
    assert sel.find_reference("/claims/view?id=Claim AC-123456") == "AC-123456"


def test_an_unknown_key_is_reported_with_file_path_and_key(tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["steps"][0]["fields"]["mileage"]["lable"] = "Odometer"
    path = write(tmp_path, data)
    with pytest.raises(SelectorFileError) as err:
        load_selector_set(path)
    assert str(path) in str(err.value)
    assert "steps[0].fields.mileage: unknown key 'lable'" in str(err.value)


def test_a_missing_required_part_is_reported_with_its_path(tmp_path):
    data = copy.deepcopy(MINIMAL)
    del data["review"]["submit"]
    path = write(tmp_path, data)
    with pytest.raises(SelectorFileError, match=r"v1\.json: review\.submit: required, missing"):
        load_selector_set(path)


def test_a_field_bound_to_no_case_field_is_refused(tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["steps"][0]["fields"]["category"] = {"label": "Category", "type": "select"}
    with pytest.raises(SelectorFileError, match=r"steps\[0\]: .*'category'.*payload\.extra"):
        load_selector_set(write(tmp_path, data))
    data["steps"][0]["fields"]["category"]["source"] = "payload.extra.category"
    assert load_selector_set(write(tmp_path, data)).steps[0].fields["category"].type == "select"


def test_a_section_frame_scopes_every_locator_inside_it(tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["steps"][0]["frame"] = "iframe#claim"
    data["steps"][0]["next"] = {"role": "button", "name": "Next", "frame": "iframe#other"}
    step = load_selector_set(write(tmp_path, data)).steps[0]
    assert step.fields["mileage"].frame == "iframe#claim"
    assert step.next is not None and step.next.frame == "iframe#other"


def test_several_versions_need_fingerprints_but_one(tmp_path):
    write(tmp_path, MINIMAL, "v1")
    write(tmp_path, {**MINIMAL, "ui_version": "v2"}, "v2")
    with pytest.raises(SelectorFileError, match="have no fingerprint"):
        load_selector_sets(tmp_path)
    write(tmp_path, {**MINIMAL, "ui_version": "v2", "fingerprint": {"url": "/v2/"}}, "v2")
    assert sorted(load_selector_sets(tmp_path)) == ["v1", "v2"]


def test_every_registered_adapters_files_load():
    for oem, adapter in adapters.load_adapters().items():
        assert adapter.selector_sets, oem
