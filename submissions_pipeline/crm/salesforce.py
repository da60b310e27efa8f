"""The production CRM: cases in a Salesforce org, through simple-salesforce.

Intake reads cases of one OEM in the status awaiting submission by SOQL, ordered by
`SystemModstamp, Id` and strictly after a cursor of both, following `nextRecordsUrl` through
every page. SystemModstamp counts whole seconds, so intake stops before the second the org was
still in when it answered (cases wait a second or two): an edit made later in that second can
never land behind the cursor. Records last modified by the integration user are skipped, so the
pipeline's own write-backs (which bump SystemModstamp) never bring a case back. Write-backs
compare first and write only the fields that differ, so the same outcome twice writes nothing;
each outcome's activity record is upserted by an external id built from job, attempt and status
(a retried write never makes a second one), before the case, so a case never shows an outcome
without its record. Batches go through the sObject Collections API, 200 records a call, and each
record's own success or error is read back: one refused record stops none of the others.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from submissions_pipeline.crm.base import (
    CaseNotFound,
    CasePage,
    ChangedAfterSubmission,
    CrmActivity,
    CrmCaseRecord,
    CrmClient,
    CrmConflict,
    CrmRecordRejected,
    CrmStatus,
    CrmUpdate,
    CrmWriteResult,
    InvalidCursor,
)
from submissions_pipeline.crm.contract import contract
from submissions_pipeline.crm.salesforce_api import SalesforceApi, content_errors
from submissions_pipeline.crm.salesforce_mapping import SalesforceMapping
from submissions_pipeline.domain import FailureObject
from submissions_pipeline.domain.clock import Clock, utcnow

#: sObject Collections take at most 200 records a call.
COLLECTION_SIZE = 200
_AUTOMATION = "automation"


def soql_string(value: str) -> str:
    """A SOQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def soql_datetime(value: str | datetime) -> str:
    dt = _parse_dt(value) if isinstance(value, str) else value
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _parse_dt(text: str) -> datetime:
    text = text.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and ":" not in text[-5:]:
        text = f"{text[:-2]}:{text[-2:]}"
    return datetime.fromisoformat(text)


def _json(value: Any) -> str | None:
    return None if value in (None, {}, []) else json.dumps(value, sort_keys=True)


def _loads(text: Any) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _chunks(items: Sequence[Any], size: int = COLLECTION_SIZE) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class SalesforceCrm(CrmClient):
    """A CrmClient over a Salesforce org (the standard Case object or a custom one)."""

    def __init__(
        self,
        api: SalesforceApi,
        mapping: SalesforceMapping | None = None,
        *,
        case_object: str | None = None,
        integration_user_id: str | None = None,
        evidence_link_base: str | None = None,
        clock: Clock = utcnow,
    ):
        self.api = api
        self.mapping = (mapping or SalesforceMapping.load()).require_valid()
        self.object = case_object or self.mapping.case_object
        self._integration_user_id = integration_user_id
        self.evidence_link_base = evidence_link_base
        self.clock = clock
        self._types = {k: v["type"] for k, v in contract()["case_fields"].items()}

    # ------------------------------------------------------------------ reads
    @property
    def integration_user_id(self) -> str | None:
        if self._integration_user_id is None:
            self.api.client()
            self._integration_user_id = self.api.user_id
        return self._integration_user_id

    def query(self, soql: str) -> list[dict[str, Any]]:
        """Every record of a query, following nextRecordsUrl to the last page."""
        rows, _ = self._query_with_snapshot(soql)
        return rows

    def _query_with_snapshot(self, soql: str) -> tuple[list[dict[str, Any]], datetime]:
        """Every record of a query and the instant its stamps are settled before (by the org's
        clock when it says, else by ours less a second of skew)."""
        page = self.api.call(lambda sf: sf.query(soql))
        answer = self.api.last_answer
        settled = answer.settled_before() if answer is not None else None
        if settled is None:
            settled = self.clock().replace(microsecond=0) - timedelta(seconds=2)
        records = list(page["records"])
        while not page.get("done", True):
            url = page["nextRecordsUrl"]
            page = self.api.call(lambda sf, url=url: sf.query_more(url, identifier_is_url=True))
            records += page["records"]
        return records, settled

    def _select(self, where: list[str], order: str = "SystemModstamp, Id", limit: int = 0) -> str:
        soql = f"SELECT {', '.join(self.mapping.case_select())} FROM {self.object}"
        if where:
            soql += " WHERE " + " AND ".join(where)
        soql += f" ORDER BY {order}"
        return soql + (f" LIMIT {limit}" if limit else "")

    def _f(self, name: str) -> str:
        return self.mapping.case_fields[name]

    def _feed_filters(self) -> list[str]:
        m = self.mapping
        where = [
            f"Status = {soql_string(m.picklist(CrmStatus.NEW))}",
            f"{self._f('case_id')} != null",
        ]
        if self.integration_user_id:
            where.append(f"LastModifiedById != {soql_string(self.integration_user_id)}")
        return where

    def _known_statuses(self) -> str:
        values = ", ".join(soql_string(v) for v in self.mapping.statuses.values())
        return f"Status IN ({values})"

    def list_new_cases(self, oem: str, cursor: str | None, limit: int = 500) -> CasePage:
        if limit <= 0:
            return CasePage(records=[], next_cursor=cursor)
        where = [f"{self._f('oem')} = {soql_string(oem)}", *self._feed_filters()]
        if cursor is not None:
            stamp, record_id = self._decode_cursor(cursor)
            where.append(
                f"(SystemModstamp > {stamp} OR (SystemModstamp = {stamp} "
                f"AND Id > {soql_string(record_id)}))"
            )
        rows, settled = self._query_with_snapshot(self._select(where, limit=limit))
        # Records of a second the org may still be writing wait for the next read: an edit in
        # that second would share their stamp and fall behind the cursor.
        rows = [r for r in rows if _parse_dt(r["SystemModstamp"]) < settled]
        records = [self._record(r) for r in rows]
        return CasePage(records=records, next_cursor=records[-1].cursor if records else cursor)

    @staticmethod
    def _decode_cursor(cursor: str) -> tuple[str, str]:
        stamp, sep, record_id = cursor.partition("|")
        try:
            if not sep or not record_id.isalnum():
                raise ValueError(cursor)
            return soql_datetime(stamp), record_id
        except ValueError:
            raise InvalidCursor(f"not a cursor of the Salesforce CRM: {cursor!r}") from None

    def count_unrouted_cases(self, oems: Collection[str]) -> dict[str, int]:
        where = self._feed_filters()
        if oems:
            keys = ", ".join(soql_string(o) for o in sorted(oems))
            where.append(f"{self._f('oem')} NOT IN ({keys})")
        oem_field = self._f("oem")
        soql = (
            f"SELECT {oem_field}, COUNT(Id) n FROM {self.object} WHERE {' AND '.join(where)} "
            f"GROUP BY {oem_field}"
        )
        rows = self.query(soql)
        return {r[oem_field]: int(r["n"]) for r in sorted(rows, key=lambda r: r[oem_field])}

    def get_case(self, case_id: str) -> CrmCaseRecord:
        rows = self._cases_by_id([case_id])
        if case_id not in rows:
            raise CaseNotFound(case_id)
        return self._record(rows[case_id])

    def list_cases(
        self, *, oem: str | None = None, status: CrmStatus | None = None
    ) -> list[CrmCaseRecord]:
        where = [self._known_statuses(), f"{self._f('case_id')} != null"]
        if oem is not None:
            where.append(f"{self._f('oem')} = {soql_string(oem)}")
        if status is not None:
            where.append(f"Status = {soql_string(self.mapping.picklist(CrmStatus(status)))}")
        return [self._record(r) for r in self.query(self._select(where, order="CreatedDate, Id"))]

    def history(self, case_id: str) -> list[CrmActivity]:
        a = self.mapping.activity
        soql = (
            f"SELECT Id, {a.kind}, {a.actor}, {a.job_id}, {a.status}, {a.changes}, {a.at} "
            f"FROM {a.object} WHERE {a.case_id} = {soql_string(case_id)} ORDER BY {a.at}, Id"
        )
        out = []
        for i, row in enumerate(self.query(soql), start=1):
            status = self.mapping.status_of(row.get(a.status)) or CrmStatus(row.get(a.status))
            out.append(
                CrmActivity(
                    activity_id=i,
                    case_id=case_id,
                    kind=row.get(a.kind) or "write_back",
                    actor=row.get(a.actor) or "",
                    job_id=row.get(a.job_id),
                    status=status,
                    changes=_loads(row.get(a.changes)) or {},
                    at=_parse_dt(row[a.at]),
                )
            )
        return out

    def _cases_by_id(self, case_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(list(dict.fromkeys(case_ids))):
            keys = ", ".join(soql_string(c) for c in chunk)
            where = [self._known_statuses(), f"{self._f('case_id')} IN ({keys})"]
            for row in self.query(self._select(where)):
                out[row[self._f("case_id")]] = row
        return out

    def _record(self, row: dict[str, Any]) -> CrmCaseRecord:
        m, wb = self.mapping, self.mapping.wb
        digits = "".join(ch for ch in str(row.get(m.sequence_field) or "") if ch.isdigit())
        failure = _loads(row.get(wb("failure")))
        changed_after = _loads(row.get(wb("changed_after_submission")))
        return CrmCaseRecord(
            case_id=row[self._f("case_id")],
            oem=row.get(self._f("oem")) or "",
            raw=m.raw_case(row, self._types),
            sequence=int(digits or 0),
            cursor=f"{row['SystemModstamp']}|{row['Id']}",
            status=m.status_of(row.get("Status")) or CrmStatus.NEW,
            job_id=row.get(wb("job_id")),
            reference=row.get(wb("reference")),
            evidence_url=row.get(wb("evidence_url")),
            failure=FailureObject.model_validate(failure) if failure else None,
            field_errors=_loads(row.get(wb("field_errors"))) or {},
            submitted_by_automation=bool(row.get(wb("submitted_by_automation"))),
            submitted_by=row.get(wb("submitted_by")),
            created_at=_parse_dt(row["CreatedDate"]),
            updated_at=_parse_dt(row["LastModifiedDate"]),
            changed_after_submission=ChangedAfterSubmission.model_validate(changed_after)
            if changed_after
            else None,
        )

    # ------------------------------------------------------------------ writes
    def _evidence_link(self, update: CrmUpdate) -> str | None:
        if self.evidence_link_base and update.job_id and update.evidence_url:
            return f"{self.evidence_link_base}{update.job_id}"
        return update.evidence_url

    def _values(self, update: CrmUpdate, row: dict[str, Any]) -> dict[str, Any]:
        wb, m = self.mapping.wb, self.mapping
        status = update.status
        if row.get(wb("changed_after_submission")):
            status = CrmStatus.NEEDS_ATTENTION
        return {
            wb("status"): m.picklist(status),
            wb("job_id"): update.job_id,
            wb("attempt"): update.attempt,
            wb("reference"): update.reference,
            wb("evidence_url"): self._evidence_link(update),
            wb("failure"): _json(update.failure.model_dump(mode="json"))
            if update.failure
            else None,
            wb("field_errors"): _json(dict(update.field_errors)),
            wb("submitted_by_automation"): update.submitted_by_automation,
            wb("submitted_by"): _AUTOMATION if update.submitted_by_automation else None,
        }

    @staticmethod
    def _diff(row: dict[str, Any], values: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {
            k: {"from": row.get(k), "to": v}
            for k, v in values.items()
            if row.get(k) != v and not (row.get(k) in (None, "") and v in (None, ""))
        }

    def write_back(self, update: CrmUpdate) -> bool:
        result = self.write_back_many([update])[0]
        self._raise(result)
        return result.changed

    @staticmethod
    def _raise(result: CrmWriteResult) -> None:
        if result.error == "not_found":
            raise CaseNotFound(result.case_id)
        if result.error == "conflict":
            raise CrmConflict(result.message or result.case_id)
        if result.error:
            raise CrmRecordRejected(
                result.case_id, result.error, result.message or "", result.fields
            )

    def write_back_many(self, updates: Sequence[CrmUpdate]) -> list[CrmWriteResult]:
        """Outcomes in sObject Collections of 200; one result per update, in order."""
        results: list[CrmWriteResult] = []
        for chunk in _chunks(list(updates)):
            current = self._cases_by_id([u.case_id for u in chunk])
            planned: list[tuple[CrmWriteResult, str, dict[str, Any], dict[str, Any]]] = []
            for update in chunk:
                result = CrmWriteResult(case_id=update.case_id)
                results.append(result)
                row = current.get(update.case_id)
                if row is None:
                    result.error, result.message = "not_found", f"no case {update.case_id!r}"
                    continue
                if self.mapping.status_of(row.get("Status")) is CrmStatus.HUMAN_SUBMITTED:
                    result.error = "conflict"
                    result.message = (
                        f"case {update.case_id} was submitted by hand by "
                        f"{row.get(self.mapping.wb('submitted_by'))}; automation reported "
                        f"{update.status.value} (job {update.job_id})"
                    )
                    continue
                values = self._values(update, row)
                changes = self._diff(row, values)
                if changes:
                    activity = self._activity(update, row, values, changes)
                    planned.append((result, row["Id"], changes, activity))
            self._apply(planned)
        return results

    def _activity(
        self,
        update: CrmUpdate,
        row: dict[str, Any],
        values: dict[str, Any],
        changes: dict[str, Any],
        *,
        kind: str = "write_back",
        actor: str = _AUTOMATION,
        key: str | None = None,
    ) -> dict[str, Any]:
        a = self.mapping.activity
        status = values.get(self.mapping.wb("status"), row.get("Status"))
        if key is None:
            status_name = (self.mapping.status_of(status) or update.status).value
            key = (
                f"{update.job_id}:{update.attempt or 0}:{status_name}"
                if update.job_id
                else f"{update.case_id}:intake:{status_name}"
            )
        return {
            "attributes": {"type": a.object},
            a.external_id: key,
            a.case: row["Id"],
            a.case_id: update.case_id,
            a.kind: kind,
            a.actor: actor,
            a.job_id: update.job_id,
            a.status: status,
            a.changes: json.dumps(changes, sort_keys=True, default=str),
            a.at: soql_datetime(self.clock()),
        }

    def _apply(
        self, planned: list[tuple[CrmWriteResult, str, dict[str, Any], dict[str, Any]]]
    ) -> None:
        """Activity records first (upsert by external id), then the cases whose record went in."""
        if not planned:
            return
        a = self.mapping.activity
        activities = [p[3] for p in planned]
        answers = self.api.call(
            lambda sf: sf.restful(
                f"composite/sobjects/{a.object}/{a.external_id}",
                method="PATCH",
                json={"allOrNone": False, "records": activities},
            )
        )
        ready = []
        for (result, record_id, changes, _), answer in zip(planned, answers, strict=True):
            if self._failed(result, answer):
                continue
            ready.append((result, record_id, changes))
        if not ready:
            return
        records = [
            {"attributes": {"type": self.object}, "id": record_id}
            | {k: c["to"] for k, c in changes.items()}
            for _, record_id, changes in ready
        ]
        answers = self.api.call(
            lambda sf: sf.restful(
                "composite/sobjects",
                method="PATCH",
                json={"allOrNone": False, "records": records},
            )
        )
        for (result, _, _), answer in zip(ready, answers, strict=True):
            if not self._failed(result, answer):
                result.changed = True

    @staticmethod
    def _failed(result: CrmWriteResult, answer: Any) -> bool:
        if isinstance(answer, dict) and answer.get("success"):
            return False
        errors = content_errors(answer) or [{"statusCode": "UNKNOWN_ERROR", "message": ""}]
        first = errors[0]
        result.error = first.get("statusCode") or "UNKNOWN_ERROR"
        result.fields = list(first.get("fields") or [])
        result.message = (
            f"{result.error} on {', '.join(result.fields) or '-'}: {first.get('message', '')}"
        )
        return True

    def _write_one(
        self, case_id: str, values: dict[str, Any], *, kind: str, actor: str, key: str
    ) -> bool:
        row = self._cases_by_id([case_id]).get(case_id)
        if row is None:
            raise CaseNotFound(case_id)
        changes = self._diff(row, values)
        if not changes:
            return False
        stub = CrmUpdate(
            case_id=case_id, status=CrmStatus.IN_PROGRESS, job_id=row.get(self.mapping.wb("job_id"))
        )
        result = CrmWriteResult(case_id=case_id)
        activity = self._activity(stub, row, values, changes, kind=kind, actor=actor, key=key)
        self._apply([(result, row["Id"], changes, activity)])
        self._raise(result)
        return result.changed

    def flag_changed_after_submission(self, case_id: str, flag: ChangedAfterSubmission) -> bool:
        wb, m = self.mapping.wb, self.mapping
        current = self._cases_by_id([case_id]).get(case_id)
        if current is None:
            raise CaseNotFound(case_id)
        values: dict[str, Any] = {
            wb("changed_after_submission"): _json(flag.model_dump(mode="json"))
        }
        if m.status_of(current.get("Status")) is not CrmStatus.HUMAN_SUBMITTED:
            values[wb("status")] = m.picklist(CrmStatus.NEEDS_ATTENTION)
        key = f"{case_id}:changed:r{flag.revision}"
        return self._write_one(
            case_id, values, kind="changed_after_submission", actor=_AUTOMATION, key=key
        )

    def record_human_submission(self, case_id: str, reference: str, by: str) -> bool:
        if not reference.strip() or not by.strip():
            raise ValueError("a human submission needs the portal reference and who submitted")
        wb, m = self.mapping.wb, self.mapping
        current = self._cases_by_id([case_id]).get(case_id)
        if current is None:
            raise CaseNotFound(case_id)
        if m.status_of(current.get("Status")) is CrmStatus.SUBMITTED and current.get(
            wb("submitted_by_automation")
        ):
            raise CrmConflict(
                f"case {case_id} was already submitted by automation "
                f"(reference {current.get(wb('reference'))}); {by} reports {reference}"
            )
        values = {
            wb("status"): m.picklist(CrmStatus.HUMAN_SUBMITTED),
            wb("reference"): reference,
            wb("submitted_by_automation"): False,
            wb("submitted_by"): by,
            wb("changed_after_submission"): None,
        }
        key = f"{case_id}:human:{reference}"
        return self._write_one(case_id, values, kind="human_submission", actor=by, key=key)
