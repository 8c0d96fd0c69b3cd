"""Set the tag (and optionally the digest) of our images in a kustomize overlay, changing nothing else.

CD points an overlay at the images of one git SHA before applying it; promotion also pins their
registry digests. The overlay's ``kustomization.yaml`` is edited line by line, so its comments,
key order and quoting stay as written: only the ``newTag`` value of each image entry is replaced
(and a ``digest`` line set, or dropped when no digest is given, so an old pin never outlives its
tag). PyYAML parses the file before and after; the result is written only if it parses to the
original document with exactly those values changed.

Usage::

    python scripts/set_image_tag.py manifests/overlays/staging --tag "$SHA"
    python scripts/set_image_tag.py manifests/overlays/prod --tag "$SHA" \
        --digest ghcr.io/ctloop/platform=sha256:... --digest ghcr.io/ctloop/serving=sha256:...
    python scripts/set_image_tag.py manifests/overlays/prod --show [--image ghcr.io/ctloop/serving]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

IMAGES = ("ghcr.io/ctloop/platform", "ghcr.io/ctloop/serving")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # the Docker reference grammar for a tag
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
TOP_KEY = re.compile(r"^[^\s#-][^:]*:")
ENTRY = re.compile(r"^(?P<indent>\s*)- ")
KEY = re.compile(r"^(?P<lead>\s*(?:-\s+)?)(?P<key>[A-Za-z]+):\s*(?P<value>[^#]*?)\s*(?P<comment>#.*)?$")


class OverlayError(ValueError):
    """The overlay cannot be edited as asked (the message says why and what to change)."""


@dataclass(frozen=True)
class Entry:
    """One block-style item of the top-level ``images:`` list: its lines ``[start, end)``."""

    start: int
    end: int
    keys: dict[str, int]  # key -> line number, for the keys written on their own lines


def kustomization_path(overlay: Path) -> Path:
    """The overlay's ``kustomization.yaml`` (``overlay`` may also be the file itself)."""
    path = overlay if overlay.is_file() else overlay / "kustomization.yaml"
    if not path.is_file():
        raise OverlayError(f"{path} not found")
    return path


def _image_entries(lines: list[str]) -> list[Entry]:
    """The items of the top-level ``images:`` block, found by indentation."""
    start = next((i for i, line in enumerate(lines) if re.match(r"^images:\s*(#.*)?$", line)), None)
    if start is None:
        raise OverlayError("no top-level block-style `images:` list (write `images:` on its own line)")
    end = next((i for i in range(start + 1, len(lines)) if TOP_KEY.match(lines[i])), len(lines))
    items: list[int] = []
    item_indent: str | None = None
    for i in range(start + 1, end):
        found = ENTRY.match(lines[i])
        if found and (item_indent is None or found["indent"] == item_indent):
            item_indent = found["indent"]
            items.append(i)
    bounds = [*items, end]
    entries = []
    for first, stop in itertools.pairwise(bounds):
        keys: dict[str, int] = {}
        for i in range(first, stop):
            if lines[i].strip().startswith("- {") or lines[i].strip().startswith("{"):
                raise OverlayError(f"line {i + 1}: flow-style image entries are not supported; write them as blocks")
            found = KEY.match(lines[i])
            if found:
                keys[found["key"]] = i
        entries.append(Entry(first, stop, keys))
    return entries


def _entry_name(lines: list[str], entry: Entry) -> Any:
    """The parsed ``name:`` value of an entry, or None."""
    if "name" not in entry.keys:
        return None
    found = KEY.match(lines[entry.keys["name"]])
    return yaml.safe_load(found["value"]) if found else None


def _value_line(line: str, key: str, value: str) -> str:
    """``line`` (a ``key: value`` line) with its value replaced by ``value`` in double quotes."""
    found = KEY.match(line)
    if found is None or found["key"] != key:
        raise OverlayError(f"expected a `{key}:` line, got {line!r}")
    comment = f"  {found['comment']}" if found["comment"] else ""
    return f'{found["lead"]}{key}: "{value}"{comment}'


def _check_args(tag: str, digests: dict[str, str], images: tuple[str, ...]) -> None:
    if not TAG.fullmatch(tag):
        raise OverlayError(f"{tag!r} is not a valid image tag")
    for name, digest in digests.items():
        if name not in images:
            raise OverlayError(f"--digest for {name}, which is not one of {', '.join(images)}")
        if not DIGEST.fullmatch(digest):
            raise OverlayError(f"digest of {name} must look like sha256:<64 hex>, got {digest!r}")


def _plan(lines: list[str], entry: Entry, tag: str, digest: str | None) -> tuple[dict[int, str | None], dict[int, str]]:
    """The line edits (None: drop the line) and insertions (after a line) that set one entry."""
    edits: dict[int, str | None] = {entry.keys["newTag"]: _value_line(lines[entry.keys["newTag"]], "newTag", tag)}
    inserts: dict[int, str] = {}
    if digest is not None and "digest" in entry.keys:
        edits[entry.keys["digest"]] = _value_line(lines[entry.keys["digest"]], "digest", digest)
    elif digest is not None:
        tag_line = KEY.match(lines[entry.keys["newTag"]])
        assert tag_line is not None  # nosec B101 # type narrowing: _value_line matched this line above
        inserts[entry.keys["newTag"]] = f'{" " * len(tag_line["lead"])}digest: "{digest}"'
    elif "digest" in entry.keys:
        edits[entry.keys["digest"]] = None
    return edits, inserts


def set_tags(text: str, tag: str, digests: dict[str, str], images: tuple[str, ...] = IMAGES) -> str:
    """``text`` (a kustomization.yaml) with each of ``images`` at ``tag`` (and its digest, if given).

    Raises:
        OverlayError: an invalid tag or digest, an image without an entry or without ``newTag``,
            or an edit that would change anything but those values.
    """
    _check_args(tag, digests, images)
    before = yaml.safe_load(text)
    if not isinstance(before, dict) or not isinstance(before.get("images"), list):
        raise OverlayError("the kustomization has no `images:` list")
    lines = text.splitlines()
    entries = _image_entries(lines)
    edits: dict[int, str | None] = {}
    inserts: dict[int, str] = {}
    expected = copy.deepcopy(before)
    for name in images:
        matches = [e for e in expected["images"] if isinstance(e, dict) and e.get("name") == name]
        if len(matches) != 1:
            raise OverlayError(f"expected one `images:` entry named {name}, found {len(matches)}")
        entry = next((e for e in entries if _entry_name(lines, e) == name), None)
        if entry is None or "newTag" not in entry.keys:
            raise OverlayError(f"the `images:` entry of {name} has no `newTag:` line to set (add one)")
        matches[0]["newTag"] = tag
        matches[0].pop("digest", None)
        if name in digests:
            matches[0]["digest"] = digests[name]
        entry_edits, entry_inserts = _plan(lines, entry, tag, digests.get(name))
        edits.update(entry_edits)
        inserts.update(entry_inserts)
    out: list[str] = []
    for i, line in enumerate(lines):
        new = edits.get(i, line)
        if new is not None:
            out.append(new)
        if i in inserts:
            out.append(inserts[i])
    result = "\n".join(out) + ("\n" if text.endswith("\n") else "")
    if yaml.safe_load(result) != expected:
        raise OverlayError("the edit would change more than the image tags; refusing to write it")
    return result


def show(text: str, only: str | None = None) -> list[str]:
    """``name:newTag[@digest]`` of each of our images in the kustomization (``only``: just that one)."""
    found = []
    for entry in yaml.safe_load(text).get("images") or []:
        name = entry.get("name")
        if name in IMAGES and (only is None or name == only):
            digest = f"@{entry['digest']}" if entry.get("digest") else ""
            found.append(f"{name}:{entry.get('newTag', 'latest')}{digest}")
    if only is not None and not found:
        raise OverlayError(f"no `images:` entry named {only}")
    return found


def _digest_arg(value: str) -> tuple[str, str]:
    name, sep, digest = value.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected IMAGE=sha256:..., got {value!r}")
    return name, digest


def main(argv: list[str] | None = None) -> int:
    """Command line: set the tags (``--tag``) or print them (``--show``); exit 1 with one error line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overlay", type=Path, help="overlay folder (or its kustomization.yaml)")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--tag", help="the new tag of both images (a git SHA)")
    what.add_argument("--show", action="store_true", help="print name:tag[@digest] of our images")
    parser.add_argument("--digest", type=_digest_arg, action="append", default=[], help="IMAGE=sha256:... to pin")
    parser.add_argument("--image", help="with --show: only this image")
    args = parser.parse_args(argv)
    try:
        path = kustomization_path(args.overlay)
        text = path.read_text(encoding="utf-8")
        if args.show:
            print("\n".join(show(text, args.image)))
            return 0
        result = set_tags(text, args.tag, dict(args.digest))
        if result != text:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(result, encoding="utf-8")
            tmp.replace(path)
        pins = ", ".join(f"{name}@{digest[:19]}…" for name, digest in args.digest) or "no digest pins"
        print(f"{path}: {', '.join(IMAGES)} -> {args.tag} ({pins})", file=sys.stderr)
    except (OverlayError, OSError, yaml.YAMLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
