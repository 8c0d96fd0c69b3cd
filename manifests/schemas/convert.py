"""Convert a Kubernetes CustomResourceDefinition into a standalone JSON Schema (draft 2020-12).

The schema validates one custom resource offline with the Python ``jsonschema`` library. Run it
again whenever a CRD is updated (see README.md in this folder for the sources and the commands)::

    python manifests/schemas/convert.py CRD.yaml --version v1 \
        --source-repo OWNER/NAME --source-path PATH/IN/REPO --source-ref TAG-OR-COMMIT

Conversion rules (the CRD's ``openAPIV3Schema`` is otherwise copied unchanged):

- ``x-kubernetes-int-or-string: true`` without ``anyOf``/``oneOf`` gets
  ``anyOf: [{type: integer}, {type: string}]`` and loses its ``type``.
- ``nullable: true`` (OpenAPI 3.0) adds ``"null"`` to ``type`` (and to ``enum``).
- Boolean ``exclusiveMinimum``/``exclusiveMaximum`` (OpenAPI 3.0) become numbers.
- A ``pattern`` starting with ``^(?flags)`` (valid in Go's RE2, rejected by Python's ``re``)
  gets its inline flags moved to the front; any other pattern Python cannot compile is an error.
- Strict mode (default): ``additionalProperties: false`` on every object schema that lists
  ``properties`` and has neither ``additionalProperties`` nor
  ``x-kubernetes-preserve-unknown-fields: true``. This mirrors ``kubectl --validate=strict``
  (the default since Kubernetes 1.27), which rejects unknown fields instead of pruning them.
- The root requires ``apiVersion`` (``const`` group/version), ``kind`` (``const``) and
  ``metadata`` (name, namespace, labels, annotations typed; other fields allowed).
- Other ``x-kubernetes-*`` keywords and ``format`` stay as they are; ``jsonschema`` ignores
  them, so list semantics and CEL rules (``x-kubernetes-validations``) are not enforced.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Keywords whose value is a map of name -> subschema, a single subschema, or a list of subschemas.
_SCHEMA_MAPS = ("properties", "patternProperties")
_SCHEMA_SINGLE = ("additionalProperties", "items", "not")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")

_LEADING_FLAGS = re.compile(r"^\^(\(\?[aiLmsux]+\))")

_STRING_MAP: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
_OBJECT_META: dict[str, Any] = {
    "type": "object",
    "description": "ObjectMeta (typed subset; other fields are allowed).",
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
    },
}
_EMBEDDED_RESOURCE_FIELDS: dict[str, Any] = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"type": "object"},
}


class ConversionError(ValueError):
    """The CRD cannot be converted (no such version, no schema, or an untranslatable keyword)."""


def load_crd(path: Path) -> dict[str, Any]:
    """Read the first CustomResourceDefinition in a (possibly multi-document) YAML file.

    Args:
        path: YAML file holding a CRD, e.g. a controller-gen ``config/crd/bases`` file.

    Returns:
        The CRD as plain Python data.

    Raises:
        ConversionError: The file holds no CustomResourceDefinition.
    """
    with path.open(encoding="utf-8") as stream:
        for document in yaml.safe_load_all(stream):
            if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                return document
    msg = f"{path}: no CustomResourceDefinition document found"
    raise ConversionError(msg)


def select_version(crd: dict[str, Any], version: str | None) -> tuple[str, dict[str, Any]]:
    """Pick a served version of an ``apiextensions.k8s.io/v1`` CRD and return its openAPIV3Schema.

    Args:
        crd: The CRD document.
        version: Version name such as ``v1``; ``None`` picks the storage version.

    Returns:
        The version name and a deep copy of its ``openAPIV3Schema``.

    Raises:
        ConversionError: The version does not exist or carries no schema.
    """
    versions: list[dict[str, Any]] = crd.get("spec", {}).get("versions", [])
    for entry in versions:
        if (entry.get("name") == version) if version else entry.get("storage", False):
            schema = entry.get("schema", {}).get("openAPIV3Schema")
            if not isinstance(schema, dict):
                msg = f"version {entry.get('name')} has no schema.openAPIV3Schema"
                raise ConversionError(msg)
            return str(entry["name"]), copy.deepcopy(schema)
    names = [entry.get("name") for entry in versions]
    msg = f"version {version or '(storage)'} not found; the CRD has {names}"
    raise ConversionError(msg)


def _translate_pattern(pattern: str) -> str:
    """Rewrite an RE2 pattern into one Python's ``re`` accepts, or raise if it cannot."""
    fixed = _LEADING_FLAGS.sub(lambda match: match.group(1) + "^", pattern, count=1)
    try:
        re.compile(fixed)
    except re.error as error:
        msg = f"pattern {pattern!r} does not compile in Python: {error}"
        raise ConversionError(msg) from error
    return fixed


def _translate_int_or_string(node: dict[str, Any]) -> None:
    """Express ``x-kubernetes-int-or-string`` in plain JSON Schema."""
    if node.get("x-kubernetes-int-or-string") is True and "anyOf" not in node and "oneOf" not in node:
        node.pop("type", None)
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]


def _translate_nullable(node: dict[str, Any]) -> None:
    """Express OpenAPI 3.0 ``nullable: true`` as a ``"null"`` type (and enum member)."""
    if node.get("nullable") is not True:
        return
    kind = node.get("type")
    if isinstance(kind, str):
        node["type"] = [kind, "null"]
    if isinstance(node.get("enum"), list) and None not in node["enum"]:
        node["enum"] = [*node["enum"], None]


def _translate_exclusive_bounds(node: dict[str, Any]) -> None:
    """Turn OpenAPI 3.0 boolean exclusive bounds into JSON Schema numeric ones."""
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if not isinstance(node.get(exclusive), bool):
            continue
        if node.pop(exclusive) and bound in node:
            node[exclusive] = node.pop(bound)


def _close_object(node: dict[str, Any]) -> None:
    """Forbid fields the schema does not list, as ``kubectl --validate=strict`` does."""
    if "properties" not in node or "additionalProperties" in node:
        return
    if node.get("x-kubernetes-preserve-unknown-fields") is True:
        return
    if node.get("x-kubernetes-embedded-resource") is True:
        for name, field in _EMBEDDED_RESOURCE_FIELDS.items():
            node["properties"].setdefault(name, copy.deepcopy(field))
    node["additionalProperties"] = False


def _subschemas(node: dict[str, Any]) -> list[dict[str, Any]]:
    """List the direct subschemas of a schema node (never ``default``, ``enum`` or examples)."""
    found: list[Any] = []
    for key in _SCHEMA_MAPS:
        found.extend(node.get(key, {}).values())
    found.extend(node[key] for key in _SCHEMA_SINGLE if key in node)
    for key in _SCHEMA_LISTS:
        found.extend(node.get(key, []))
    return [child for child in found if isinstance(child, dict)]


def translate(node: dict[str, Any], *, strict: bool) -> None:
    """Rewrite an OpenAPI v3 structural schema in place into JSON Schema draft 2020-12.

    Args:
        node: A schema node; its subschemas are rewritten recursively.
        strict: Add ``additionalProperties: false`` to closed object schemas.
    """
    _translate_int_or_string(node)
    _translate_nullable(node)
    _translate_exclusive_bounds(node)
    if isinstance(node.get("pattern"), str):
        node["pattern"] = _translate_pattern(node["pattern"])
    if strict:
        _close_object(node)
    for child in _subschemas(node):
        translate(child, strict=strict)


def build_schema(
    crd: dict[str, Any],
    version: str | None,
    *,
    source: str,
    strict: bool = True,
) -> tuple[str, dict[str, Any]]:
    """Build the standalone JSON Schema for one version of a CRD.

    Args:
        crd: The CRD document.
        version: Version name such as ``v1``; ``None`` picks the storage version.
        source: Provenance written into ``$comment`` (repository, path, tag or commit, digest).
        strict: Reject fields the CRD does not declare (see the module docstring).

    Returns:
        The output file name (``<kind>-<group>-<version>.json``, lower case) and the schema.
    """
    group = str(crd["spec"]["group"])
    kind = str(crd["spec"]["names"]["kind"])
    name, schema = select_version(crd, version)
    translate(schema, strict=strict)

    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {**properties.get("apiVersion", {}), "type": "string", "const": f"{group}/{name}"}
    properties["kind"] = {**properties.get("kind", {}), "type": "string", "const": kind}
    metadata = properties.get("metadata", {})
    object_meta = copy.deepcopy(_OBJECT_META)
    properties["metadata"] = {
        **object_meta,
        **metadata,
        "properties": {**object_meta["properties"], **metadata.get("properties", {})},
    }
    required = [field for field in ("apiVersion", "kind", "metadata") if field not in schema.get("required", [])]
    schema["required"] = [*required, *schema.get("required", [])]

    header = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$comment": f"Generated by manifests/schemas/convert.py (strict={strict}) from {source}. Do not edit by hand.",
        "title": f"{kind} ({group}/{name})",
    }
    return f"{kind}-{group}-{name}.json".lower(), {**header, **schema}


def render(schema: dict[str, Any]) -> str:
    """Serialize a schema the way the files in this folder are written (stable, diff-friendly)."""
    return json.dumps(schema, indent=1, ensure_ascii=False) + "\n"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("crd", type=Path, help="CRD YAML file (apiextensions.k8s.io/v1)")
    parser.add_argument("--version", help="CRD version to convert (default: the storage version)")
    parser.add_argument("--source-repo", required=True, help="e.g. SeldonIO/seldon-core")
    parser.add_argument("--source-path", required=True, help="path of the CRD file inside the repository")
    parser.add_argument("--source-ref", required=True, help="tag and/or commit the file was taken from")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--no-strict", dest="strict", action="store_false", help="allow undeclared fields")
    parser.add_argument("--check", action="store_true", help="exit 1 if the output file differs; write nothing")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: convert one CRD file and write (or check) its schema.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The process exit code.
    """
    args = _parse_args(argv)
    try:
        crd = load_crd(args.crd)
        digest = hashlib.sha256(args.crd.read_bytes()).hexdigest()
        source = (
            f"https://github.com/{args.source_repo} {args.source_path} @ {args.source_ref} "
            f"(sha256 {digest}), spec.versions[{args.version or 'storage'}].schema.openAPIV3Schema"
        )
        file_name, schema = build_schema(crd, args.version, source=source, strict=args.strict)
    except (ConversionError, KeyError, yaml.YAMLError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    target = args.out_dir / file_name
    text = render(schema)
    if args.check:
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current != text:
            sys.stderr.write(f"{target} is out of date: re-run without --check\n")
            return 1
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {target} ({len(text):,} bytes)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
