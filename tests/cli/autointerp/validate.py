#!/usr/bin/env python3
"""validate.py -- checks a JSON document against one of docs/schemas/*.schema.json.

Usage: validate.py SCHEMA DOC        exit 0 when DOC is valid, 1 with the reasons when not.

Two validators, so that neither is trusted alone: a small one written here for the subset of
JSON Schema (draft 2020-12) the schemas use (type, const, enum, required, properties,
additionalProperties, propertyNames, pattern, items, minItems, maxItems, minimum, maximum, local
$ref); it refuses any other keyword rather than ignore it. And, when Debian's python3-jsonschema
is installed (harness/scripts/install-deps.sh), jsonschema's Draft202012Validator as well.
Python standard library otherwise.
"""
import json
import re
import sys

IGNORED = {"$schema", "$id", "title", "description", "$defs"}
KNOWN = {"type", "const", "enum", "required", "properties", "additionalProperties",
         "propertyNames", "pattern", "items", "minItems", "maxItems", "minimum", "maximum",
         "$ref"}


def is_type(v, t):
    if t == "null":
        return v is None
    if t == "boolean":
        return isinstance(v, bool)
    if t == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, float) and v.is_integer())
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "string":
        return isinstance(v, str)
    if t == "array":
        return isinstance(v, list)
    if t == "object":
        return isinstance(v, dict)
    raise ValueError("unknown type %r" % t)


def check(root, s, v, path, errs):
    for k in s:
        if k not in KNOWN and k not in IGNORED:
            raise ValueError("schema keyword %r at %s is not supported by this validator" % (k, path))
    if "$ref" in s:
        ref = s["$ref"]
        if not ref.startswith("#/"):
            raise ValueError("only local $ref: %s" % ref)
        node = root
        for part in ref[2:].split("/"):
            node = node[part]
        check(root, node, v, path, errs)
    if "type" in s:
        ts = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(is_type(v, t) for t in ts):
            errs.append("%s: %r is not of type %s" % (path, v, "/".join(ts)))
            return
    if "const" in s and v != s["const"]:
        errs.append("%s: %r is not %r" % (path, v, s["const"]))
    if "enum" in s and v not in s["enum"]:
        errs.append("%s: %r is not one of %r" % (path, v, s["enum"]))
    num = isinstance(v, (int, float)) and not isinstance(v, bool)
    if num and "minimum" in s and v < s["minimum"]:
        errs.append("%s: %r < minimum %r" % (path, v, s["minimum"]))
    if num and "maximum" in s and v > s["maximum"]:
        errs.append("%s: %r > maximum %r" % (path, v, s["maximum"]))
    if isinstance(v, str) and "pattern" in s and not re.search(s["pattern"], v):
        errs.append("%s: %r does not match %s" % (path, v, s["pattern"]))
    if isinstance(v, list):
        if "minItems" in s and len(v) < s["minItems"]:
            errs.append("%s: %d items < %d" % (path, len(v), s["minItems"]))
        if "maxItems" in s and len(v) > s["maxItems"]:
            errs.append("%s: %d items > %d" % (path, len(v), s["maxItems"]))
        if "items" in s:
            for i, x in enumerate(v):
                check(root, s["items"], x, "%s[%d]" % (path, i), errs)
    if isinstance(v, dict):
        for k in s.get("required", []):
            if k not in v:
                errs.append("%s: missing %r" % (path, k))
        props = s.get("properties", {})
        for k, x in v.items():
            if "propertyNames" in s:
                check(root, s["propertyNames"], k, "%s{name %s}" % (path, k), errs)
            if k in props:
                check(root, props[k], x, "%s.%s" % (path, k), errs)
            elif "additionalProperties" in s:
                ap = s["additionalProperties"]
                if ap is False:
                    errs.append("%s: unexpected property %r" % (path, k))
                elif isinstance(ap, dict):
                    check(root, ap, x, "%s.%s" % (path, k), errs)


def main():
    schema = json.load(open(sys.argv[1], encoding="utf-8"))
    doc = json.load(open(sys.argv[2], encoding="utf-8"))
    errs = []
    check(schema, schema, doc, "$", errs)
    try:
        import jsonschema  # Debian python3-jsonschema, when installed
        v = jsonschema.Draft202012Validator(schema)
        for e in v.iter_errors(doc):
            errs.append("jsonschema: %s: %s" % ("/".join(str(p) for p in e.path), e.message))
        used = "subset validator + jsonschema"
    except ImportError:
        used = "subset validator (python3-jsonschema not installed)"
    if errs:
        for e in errs[:20]:
            print(e)
        sys.exit(1)
    print("valid (%s)" % used)


if __name__ == "__main__":
    main()
