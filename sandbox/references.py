"""Reference-number formats of the sandbox portals, per OEM and UI version.

Each portal hands out references in its own format, and ``ui_version="v2"`` changes it, so that an
adapter's reference regex is versioned like its selectors. The patterns below are anchored full
matches; an adapter would search for them unanchored in the confirmation text.

| OEM       | v1              | v2               |
|-----------|-----------------|------------------|
| northwind | NW-2026-004217  | NWM-26-0004217   |
| aurora    | AUR-7KQ2M9XD    | AU-7KQ2-M9XD     |
| kestrel   | KT/004217/B     | KST-004217-B     |
"""

from __future__ import annotations

import hashlib

#: Crockford base32 (no I, L, O, U): what aurora's codes are drawn from.
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_CLASS = "[0-9A-HJKMNP-TV-Z]"

REFERENCE_PATTERNS: dict[str, dict[str, str]] = {
    "northwind": {"v1": r"^NW-\d{4}-\d{6}$", "v2": r"^NWM-\d{2}-\d{7}$"},
    "aurora": {
        "v1": rf"^AUR-{_CROCKFORD_CLASS}{{8}}$",
        "v2": rf"^AU-{_CROCKFORD_CLASS}{{4}}-{_CROCKFORD_CLASS}{{4}}$",
    },
    "kestrel": {"v1": r"^KT/\d{6}/[A-Z]$", "v2": r"^KST-\d{6}-[A-Z]$"},
}

#: Where the reference sequence starts after every reset (northwind and kestrel number claims).
FIRST_SEQUENCE = 4217


def kestrel_check_letter(sequence: int) -> str:
    """Kestrel's check letter: weighted digit sum of the 6-digit number, mod 26."""
    digits = f"{sequence:06d}"
    return chr(ord("A") + sum((i + 1) * int(d) for i, d in enumerate(digits)) % 26)


def aurora_code(seed: int, case_id: str, sequence: int) -> str:
    """Eight Crockford characters derived from the seed, case and sequence (unique per sequence)."""
    digest = hashlib.sha256(f"{seed}|aurora|reference|{case_id}|{sequence}".encode()).digest()
    value = int.from_bytes(digest[:5], "big")  # 40 bits = 8 base32 characters
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(8)))


def make_reference(
    oem: str, ui_version: str, *, sequence: int, year: int, seed: int, case_id: str
) -> str:
    """The reference ``oem`` shows for its ``sequence``-th submission under ``ui_version``."""
    v2 = ui_version == "v2"
    if oem == "northwind":
        return f"NWM-{year % 100:02d}-{sequence:07d}" if v2 else f"NW-{year:04d}-{sequence:06d}"
    if oem == "aurora":
        code = aurora_code(seed, case_id, sequence)
        return f"AU-{code[:4]}-{code[4:]}" if v2 else f"AUR-{code}"
    if oem == "kestrel":
        letter = kestrel_check_letter(sequence)
        return f"KST-{sequence:06d}-{letter}" if v2 else f"KT/{sequence:06d}/{letter}"
    raise KeyError(oem)
