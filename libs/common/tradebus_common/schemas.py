"""proto-schemas/ generated from the code: JSON Schema of every event and the subject catalogue.

The code is the source of truth; proto-schemas/ is its published, language-neutral copy for
clients that do not import tradebus. `tradebus schemas --out proto-schemas --check` (a unit
test too) fails when the two drift apart.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from . import subjects
from .events import ALL_EVENTS, SCHEMA_VERSION, Event

DRAFT = "https://json-schema.org/draft/2020-12/schema"
REF_TEMPLATE = "#/$defs/{name}"
EVENTS_FILE = "events.schema.json"
SUBJECTS_FILE = "subjects.json"
EVENTS_DIR = "events"

# msgspec decodes a Decimal from a JSON number too (keeping its exact text), so the schema
# must admit both forms, or clients that send numbers would be told they are wrong.
DECIMAL_DEF = {
    "title": "Decimal",
    "description": "A decimal as a string (what tradebus writes); a JSON number is also "
    "accepted on input and keeps its exact text.",
    "anyOf": [{"type": "string", "format": "decimal"}, {"type": "number"}],
}
DECIMAL_REF = {"$ref": REF_TEMPLATE.format(name="Decimal")}

STREAMS = {
    subjects.STREAM_TRADING: [subjects.TRADING_ALL],
    subjects.STREAM_MARKET: [subjects.MARKET_ALL],
}


def tag_of(cls: type[Event]) -> str:
    return cls.__struct_config__.tag  # type: ignore[return-value]


def _use_decimal_ref(node: Any) -> Any:
    """Point every decimal at the shared Decimal definition, keeping defaults/descriptions."""
    if isinstance(node, list):
        return [_use_decimal_ref(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _use_decimal_ref(value) for key, value in node.items()}
    if out.get("type") == "string" and out.get("format") == "decimal":
        del out["type"], out["format"]
        out = DECIMAL_REF | out
    return out


def _schema(types: tuple[type[Event], ...], schema_id: str, title: str) -> dict[str, Any]:
    refs, defs = msgspec.json.schema_components(types, ref_template=REF_TEMPLATE)
    defs = _use_decimal_ref(defs) | {"Decimal": DECIMAL_DEF}
    top: dict[str, Any] = {"$schema": DRAFT, "$id": schema_id, "title": title}
    top["x-tradebus-schema-version"] = SCHEMA_VERSION
    # Tags are exclusive (an enum of one value each), so exactly one branch can match.
    top["oneOf"] = list(refs)
    top["$defs"] = defs
    return top


def events_schema() -> dict[str, Any]:
    return _schema(ALL_EVENTS, EVENTS_FILE, "tradebus event (any)")


def event_schema(cls: type[Event]) -> dict[str, Any]:
    """One event on its own, with only the definitions it needs: easy to hand to a client."""
    name = f"{EVENTS_DIR}/{tag_of(cls)}.schema.json"
    return _schema((cls,), name, f"tradebus event {tag_of(cls)!r} ({cls.__name__})")


def subjects_doc() -> dict[str, Any]:
    buckets = sorted(v for k, v in vars(subjects).items() if k.startswith("BUCKET_"))
    return {
        "streams": {name: {"subjects": subs} for name, subs in STREAMS.items()},
        "buckets": buckets,
        "subjects": msgspec.to_builtins(subjects.CATALOGUE),
    }


def _dump(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """Relative file name -> content, the whole of proto-schemas/ except its README."""
    files = {EVENTS_FILE: _dump(events_schema()), SUBJECTS_FILE: _dump(subjects_doc())}
    for cls in ALL_EVENTS:
        files[f"{EVENTS_DIR}/{tag_of(cls)}.schema.json"] = _dump(event_schema(cls))
    return dict(sorted(files.items()))


def _existing(out_dir: Path) -> set[str]:
    # Only *.json is ours: README.md and any other hand-written file are left alone.
    return {p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*.json") if p.is_file()}


def diff(out_dir: str | Path) -> dict[str, str]:
    """File name -> "missing" | "changed" | "extra", for every file out of step with the code."""
    out_dir = Path(out_dir)
    wanted = generate()
    found: dict[str, str] = {}
    for name, text in wanted.items():
        path = out_dir / name
        if not path.is_file():
            found[name] = "missing"
        elif path.read_text(encoding="utf-8") != text:
            found[name] = "changed"
    for name in _existing(out_dir) if out_dir.is_dir() else ():
        if name not in wanted:
            found[name] = "extra"
    return dict(sorted(found.items()))


def check(out_dir: str | Path) -> list[str]:
    """Names of the drifted, missing and extra files; empty when proto-schemas/ is current."""
    return list(diff(out_dir))


def write(out_dir: str | Path) -> list[str]:
    """Bring out_dir up to date (stale generated files are removed); return what changed."""
    out_dir = Path(out_dir)
    changes = diff(out_dir)
    wanted = generate()
    for name, status in changes.items():
        path = out_dir / name
        if status == "extra":
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted[name], encoding="utf-8")
    return list(changes)


def main(argv: list[str] | None = None) -> int:
    """`tradebus schemas --out DIR [--check]`; argv excludes the `schemas` word itself."""
    parser = argparse.ArgumentParser(
        prog="tradebus schemas", description="Generate or check proto-schemas/ from the code."
    )
    parser.add_argument("--out", default="proto-schemas", help="output directory")
    parser.add_argument("--check", action="store_true", help="fail if DIR is out of date")
    args = parser.parse_args(argv)
    if args.check:
        return _report_check(args.out)
    changed = write(args.out)
    print(f"{args.out}: {len(changed)} file(s) updated" + "".join(f"\n  {n}" for n in changed))
    return 0


def _report_check(out_dir: str) -> int:
    drift = diff(out_dir)
    if not drift:
        print(f"{out_dir}: up to date")
        return 0
    lines = "".join(f"\n  {status:8} {name}" for name, status in drift.items())
    print(
        f"{out_dir} has drifted from the code ({len(drift)} file(s)):{lines}\n"
        f"Regenerate with `make schemas` (tradebus schemas --out {out_dir}) and commit.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
