#!/usr/bin/env python3
"""Generate pkg/protobuf/src/schema_table.rs, the protobuf -> JSON schema table of k8s-protobuf.

Inputs (none of them is committed here; the output is our own derived data):

* k8s-pb 0.9.0 (crates.io, Apache-2.0): prost structs generated from upstream's
  generated.proto files. Source of truth for messages, field tags, wire kinds and labels.
* k8s-openapi 0.29.0, module v1_33: upstream's OpenAPI definitions as Rust. Says which
  group-versions Kubernetes 1.33 serves and their apiVersions, restores upstream's casing
  of message names prost changed, checks every JSON name (each must be a property of the
  definition), and names fields the Go types below lack (matched lowercased, without
  underscores or dashes).
* pkg/openapi/src/registry.rs: the group-versions this workspace serves (BUILTIN_KINDS).
* The Go API types (k8s.io/api, k8s.io/apimachinery, k8s.io/apiextensions-apiserver,
  k8s.io/kube-aggregator at the Kubernetes 1.33 tag), matched to k8s-pb by tag number
  (their `protobuf:"...,name=X"` must agree with k8s-pb's field name). Their struct tags
  give the JSON name, and what neither crate above says: whether a scalar field is a Go
  pointer and whether its JSON tag has `omitempty`, and which embedded messages are
  inlined in JSON (`json:",inline"`). Go's protobuf marshaller writes every non-pointer
  scalar, zero or not, so the transcoder needs this to drop the zero values upstream's
  JSON omits.

Fields with no source for their JSON name (newer than 1.33) get a camelCase of the prost
name and are listed on stderr as notes.

Usage:
    git clone --depth 1 -b v0.33.13 https://github.com/kubernetes/api          GO/api
    git clone --depth 1 -b v0.33.13 https://github.com/kubernetes/apimachinery GO/apimachinery
    git clone --depth 1 -b v0.33.13 https://github.com/kubernetes/apiextensions-apiserver \
        GO/apiextensions-apiserver
    git clone --depth 1 -b v0.33.13 https://github.com/kubernetes/kube-aggregator \
        GO/kube-aggregator
    (cd pkg/protobuf && cargo fetch)   # brings k8s-pb and k8s-openapi into ~/.cargo/registry
    python3 hack/gen-protobuf-schema.py --go-root GO [--go-version v0.33.13]

Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import sys
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "pkg", "protobuf", "src", "schema_table.rs")
DEFAULT_REGISTRY = os.path.join(REPO, "pkg", "openapi", "src", "registry.rs")

META = "k8s.io.apimachinery.pkg.apis.meta.v1"
# apimachinery packages that carry no group-version of their own but are referenced by all.
APIMACHINERY_PACKAGES = {
    META,
    "k8s.io.apimachinery.pkg.runtime",
    "k8s.io.apimachinery.pkg.api.resource",
    "k8s.io.apimachinery.pkg.util.intstr",
}
APIEXT = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1"

# Messages whose JSON form is not an object of their fields (custom MarshalJSON upstream).
SPECIAL_SHAPES = {
    f"{META}.Time": "Time",
    f"{META}.MicroTime": "MicroTime",
    f"{META}.Duration": "Duration",
    f"{META}.FieldsV1": "FieldsV1",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawExtension",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
    "k8s.io.apimachinery.pkg.api.resource.QuantityValue": "Quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    f"{APIEXT}.JSON": "Json",
    f"{APIEXT}.JSONSchemaPropsOrArray": "PropsOrArray",
    f"{APIEXT}.JSONSchemaPropsOrBool": "PropsOrBool",
    f"{APIEXT}.JSONSchemaPropsOrStringArray": "PropsOrStringArray",
}

SCALAR_KINDS = {
    "string": "Str",
    "bytes": "Bytes",
    "bool": "Bool",
    "int32": "I32",
    "int64": "I64",
    "uint32": "U32",
    "uint64": "U64",
    "double": "F64",
    "float": "F32",
}

# Go initialisms, for the last-resort JSON name of a field no other source names.
INITIALISMS = {"ip": "IP", "ips": "IPs", "tls": "TLS", "url": "URL", "uid": "UID",
               "cidr": "CIDR", "cidrs": "CIDRs", "api": "API", "id": "ID", "dns": "DNS",
               "json": "JSON", "http": "HTTP", "uri": "URI", "ipc": "IPC", "pid": "PID"}


def fail(msg: str) -> None:
    sys.exit(f"gen-protobuf-schema: {msg}")


def norm(name: str) -> str:
    """Field names compared across sources: lowercase, alphanumerics only."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def find_crate(name: str) -> str:
    hits = sorted(glob.glob(os.path.expanduser(f"~/.cargo/registry/src/*/{name}")))
    if not hits:
        fail(f"{name} not found under ~/.cargo/registry/src; run `cargo fetch` in pkg/protobuf")
    return hits[-1]


# ---------------------------------------------------------------------------------------
# k8s-pb


@dataclass
class PbField:
    name: str  # snake_case, without r#
    tag: int
    kind: str  # string|bytes|bool|int32|...|message
    label: str  # Opt|Rep|Map
    type_ref: str | None  # fully qualified message for message kinds


@dataclass
class PbMessage:
    package: str
    name: str  # prost's struct name
    docs: str
    fields: list[PbField] = field(default_factory=list)


PROST_ATTR = re.compile(r"#\[prost\((.*)\)\]\s*$")
TYPE_PATH = re.compile(r"(?:(?:super|crate|self)::)*(?:[a-z_0-9]+::)*[A-Z][A-Za-z0-9_]*")
WRAPPERS = {"Option", "Vec", "Box", "BTreeMap", "String"}


def resolve_type(decl: str, module: list[str]) -> str:
    paths = [p for p in TYPE_PATH.findall(decl.replace(" ", "")) if p.split("::")[-1] not in WRAPPERS]
    if not paths:
        fail(f"no message type in {decl!r}")
    segs = paths[-1].split("::")
    base = list(module)
    if segs[0] == "crate":
        base, segs = [], segs[1:]
    while segs and segs[0] in ("super", "self"):
        if segs[0] == "super":
            base = base[:-1]
        segs = segs[1:]
    return "k8s.io." + ".".join(base + segs)


def parse_prost_attr(attr: str) -> tuple[str, str, int]:
    tag_m = re.search(r'tag\s*=\s*"(\d+)"', attr)
    if not tag_m:
        fail(f"prost attribute without tag: {attr}")
    tag = int(tag_m.group(1))
    map_m = re.match(r'\s*btree_map\s*=\s*"string,\s*(\w+)"', attr)
    if map_m:
        return map_m.group(1), "Map", tag
    if attr.lstrip().startswith(("btree_map", "hash_map", "oneof", "enumeration")):
        fail(f"unsupported prost attribute: {attr}")
    kind = re.match(r"\s*(\w+)", attr).group(1)
    label = "Rep" if re.search(r"\brepeated\b", attr) else "Opt"
    return kind, label, tag


def parse_pb_module(path: str, module: list[str]) -> tuple[list[PbMessage], dict[str, str]]:
    package = "k8s.io." + ".".join(module)
    messages: list[PbMessage] = []
    api_versions: dict[str, str] = {}
    docs: list[str] = []
    current: PbMessage | None = None
    attr: str | None = None
    decl: str | None = None
    pending_name = ""
    impl_for = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            s = line.strip()
            if decl is not None:
                decl += " " + s
                if decl.count("<") == decl.count(">") and decl.endswith(","):
                    finish_field(current, attr, pending_name, decl, module)
                    decl, attr = None, None
                continue
            if current is None:
                if s.startswith("///"):
                    docs.append(s[3:].strip())
                    continue
                if s.startswith("#["):
                    continue
                m = re.match(r"pub struct (\w+) \{", s)
                if m:
                    current = PbMessage(package, m.group(1), "\n".join(docs))
                    messages.append(current)
                    docs = []
                    if s.endswith("{}"):
                        current = None
                    continue
                docs = []
                m = re.match(r"impl crate::Resource for (\w+) \{", s)
                if m:
                    impl_for = m.group(1)
                m = re.match(r'const API_VERSION: &\'static str = "([^"]+)";', s)
                if m and impl_for:
                    api_versions[impl_for] = m.group(1)
                continue
            if s == "}":
                current = None
                continue
            m = PROST_ATTR.match(s)
            if m:
                attr = m.group(1)
                continue
            m = re.match(r"pub (?:r#)?(\w+):\s*(.*)$", s)
            if m and attr is not None:
                pending_name, decl = m.group(1), m.group(2)
                if decl and decl.count("<") == decl.count(">") and decl.endswith(","):
                    finish_field(current, attr, pending_name, decl, module)
                    decl, attr = None, None
    return messages, api_versions


def finish_field(msg: PbMessage, attr: str, name: str, decl: str, module: list[str]) -> None:
    kind, label, tag = parse_prost_attr(attr)
    type_ref = None
    if kind == "message":
        type_ref = resolve_type(decl, module)
    msg.fields.append(PbField(name, tag, kind, label, type_ref))


def load_k8s_pb(root: str) -> tuple[dict[str, list[PbMessage]], dict[str, set[str]]]:
    by_package: dict[str, list[PbMessage]] = {}
    versions: dict[str, set[str]] = {}
    src = os.path.join(root, "src")
    for path in sorted(glob.glob(os.path.join(src, "**", "mod.rs"), recursive=True)):
        module = os.path.relpath(os.path.dirname(path), src).split(os.sep)
        msgs, api_versions = parse_pb_module(path, module)
        if msgs:
            pkg = "k8s.io." + ".".join(module)
            by_package[pkg] = msgs
            versions.setdefault(pkg, set()).update(api_versions.values())
    return by_package, versions


# ---------------------------------------------------------------------------------------
# k8s-openapi


@dataclass
class OpenApiDef:
    package: str
    name: str
    properties: set[str]


def load_k8s_openapi(root: str) -> tuple[dict[str, dict[str, OpenApiDef]], dict[str, set[str]], set[str]]:
    """Definitions by package (lowercased name key), apiVersions by package, module dirs."""
    defs: dict[str, dict[str, OpenApiDef]] = {}
    versions: dict[str, set[str]] = {}
    modules: set[str] = set()
    for path in sorted(glob.glob(os.path.join(root, "**", "*.rs"), recursive=True)):
        rel_dir = os.path.relpath(os.path.dirname(path), root)
        if rel_dir != ".":
            modules.add("k8s.io." + rel_dir.replace(os.sep, "."))
        with open(path, encoding="utf-8") as f:
            text = f.read()
        m = re.search(r'fn schema_name\(\)[^{]*\{\s*"([^"]+)"\.into\(\)', text)
        if not m:
            continue
        full = m.group(1)
        if not full.startswith("io.k8s."):
            continue
        full = "k8s.io." + full[len("io.k8s."):].replace("-", "_")
        pkg, _, name = full.rpartition(".")
        props = set(re.findall(r'"([^"]+)" => Field::Key_', text))
        defs.setdefault(pkg, {})[name.lower()] = OpenApiDef(pkg, name, props)
        for v in re.findall(r'const API_VERSION: &\'static str = "([^"]+)";', text):
            versions.setdefault(pkg, set()).add(v)
    return defs, versions, modules


# ---------------------------------------------------------------------------------------
# Go API types


@dataclass
class GoField:
    tag: int
    json: str  # "" when inline
    inline: bool
    skip: bool  # json:"-"
    omitempty: bool
    pointer: bool
    proto_name: str


GO_STRUCT = re.compile(r"^type (\w+) struct \{\s*$")
GO_FIELD = re.compile(r"^\s*(\S+)(?:\s+(\S+))?\s+`([^`]*)`")


def go_dir(go_root: str, package: str) -> str | None:
    for prefix, repo in (("k8s.io.api.", "api"),
                         ("k8s.io.apimachinery.", "apimachinery"),
                         ("k8s.io.apiextensions_apiserver.", "apiextensions-apiserver"),
                         ("k8s.io.kube_aggregator.", "kube-aggregator")):
        if package.startswith(prefix):
            return os.path.join(go_root, repo, *package[len(prefix):].split("."))
    return None


def load_go_package(path: str) -> dict[str, dict[int, GoField]]:
    structs: dict[str, dict[int, GoField]] = {}
    for file in sorted(glob.glob(os.path.join(path, "*.go"))):
        if file.endswith("_test.go"):
            continue
        current = None
        with open(file, encoding="utf-8") as f:
            for line in f:
                if current is None:
                    m = GO_STRUCT.match(line)
                    if m:
                        current = structs.setdefault(m.group(1), {})
                    continue
                if line.startswith("}"):
                    current = None
                    continue
                m = GO_FIELD.match(line)
                if not m or m.group(1).startswith("//"):
                    continue
                gotype = m.group(2) if m.group(2) else m.group(1)
                tags = dict(re.findall(r'(\w+):"([^"]*)"', m.group(3)))
                proto = tags.get("protobuf")
                if not proto or proto == "-":
                    continue
                parts = proto.split(",")
                json_parts = tags.get("json", "").split(",")
                opts = set(json_parts[1:])
                proto_name = next((p[5:] for p in parts if p.startswith("name=")), "")
                current[int(parts[1])] = GoField(
                    tag=int(parts[1]),
                    json=json_parts[0],
                    inline="inline" in opts,
                    skip=json_parts[0] == "-",
                    omitempty=bool(opts & {"omitempty", "omitzero"}),
                    pointer=gotype.startswith("*"),
                    proto_name=proto_name,
                )
    return structs


# ---------------------------------------------------------------------------------------
# assembly


def camel_fallback(snake: str) -> str:
    words = snake.split("_")
    out = [words[0]]
    for w in words[1:]:
        out.append(INITIALISMS.get(w, w[:1].upper() + w[1:]))
    return "".join(out)


def check_go_agrees(full: str, pf: PbField, gf: GoField) -> None:
    """k8s-pb and the Go types must name the same field under a tag (the Go tag's `name=`
    is the .proto field name); anything else means the two disagree on tag numbers and a
    table built from them would be wrong. (The Go tag's encoding text is not compared:
    upstream writes "bytes" for many pointer scalars.)"""
    if gf.proto_name and norm(gf.proto_name) != norm(pf.name):
        fail(f"{full} tag {pf.tag}: k8s-pb calls it {pf.name}, Go calls it {gf.proto_name}")


def served_versions(registry: str) -> set[str]:
    with open(registry, encoding="utf-8") as f:
        text = f.read()
    served = set()
    for group, version in re.findall(r'^\s*"([^"]*)" "([^"]+)" "\w+" (?:true|false) =>', text, re.M):
        served.add(f"{group}/{version}" if group else version)
    if not served:
        fail(f"no BUILTIN_KINDS found in {registry}")
    return served


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k8s-pb", default=None, help="k8s-pb 0.9.0 crate source directory")
    ap.add_argument("--k8s-openapi", default=None, help="k8s-openapi 0.29.0 src/v1_33 directory")
    ap.add_argument("--registry", default=DEFAULT_REGISTRY)
    ap.add_argument("--go-root", required=True,
                    help="directory with api/, apimachinery/, apiextensions-apiserver/, kube-aggregator/")
    ap.add_argument("--go-version", default="v0.33.13", help="tag of the Go sources (for the header)")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()

    pb_root = args.k8s_pb or find_crate("k8s-pb-0.9.0")
    oa_root = args.k8s_openapi or os.path.join(find_crate("k8s-openapi-0.29.0"), "src", "v1_33")
    served = served_versions(args.registry)

    pb, pb_versions = load_k8s_pb(pb_root)
    oa_defs, oa_versions, oa_modules = load_k8s_openapi(oa_root)

    # Which packages: what 1.33 serves (k8s-openapi v1_33 has it) and is v1 or ours.
    packages: dict[str, set[str]] = {}
    for pkg in pb:
        if pkg in APIMACHINERY_PACKAGES:
            packages[pkg] = set()
            continue
        if pkg not in oa_modules:
            continue
        gvs = pb_versions.get(pkg, set()) | oa_versions.get(pkg, set())
        if not gvs:
            continue
        if any(gv.rsplit("/", 1)[-1] == "v1" or gv in served for gv in gvs):
            packages[pkg] = gvs
    for pkg in APIMACHINERY_PACKAGES:
        if pkg not in packages:
            fail(f"k8s-pb has no package {pkg}")

    go_cache: dict[str, dict[str, dict[int, GoField]]] = {}
    for pkg in packages:
        d = go_dir(args.go_root, pkg)
        if d is None or not os.path.isdir(d):
            fail(f"no Go sources for {pkg} (looked in {d})")
        go_cache[pkg] = load_go_package(d)

    # Canonical (upstream) message names: prost re-cases some (AWS... -> Aws...).
    canonical: dict[str, str] = {}
    for pkg in packages:
        go_names = {n.lower(): n for n in go_cache[pkg]}
        oa_names = {k: v.name for k, v in oa_defs.get(pkg, {}).items()}
        for msg in pb[pkg]:
            low = msg.name.lower()
            name = go_names.get(low) or oa_names.get(low) or msg.name
            canonical[f"{pkg}.{msg.name}"] = f"{pkg}.{name}"

    stats = {"go": 0, "openapi": 0, "fallback": 0, "omit_zero": 0, "inline": 0, "skipped": 0}
    warnings: list[str] = []
    out_messages: list[tuple[str, str, list[tuple]]] = []
    for pkg in sorted(packages):
        for msg in pb[pkg]:
            full = canonical[f"{pkg}.{msg.name}"]
            name = full.rsplit(".", 1)[1]
            shape = SPECIAL_SHAPES.get(full, "Object")
            if shape == "Object" and "+protobuf.nullable=true" in msg.docs and \
                    len(msg.fields) == 1 and msg.fields[0].tag == 1 and msg.fields[0].label == "Rep":
                shape = "List"
            go_fields = go_cache[pkg].get(name, {})
            oa = oa_defs.get(pkg, {}).get(name.lower())
            oa_by_norm = {norm(p): p for p in oa.properties} if oa else {}
            rows = []
            go_order = {t: i for i, t in enumerate(go_fields)}
            for pf in sorted(msg.fields, key=lambda f: (go_order.get(f.tag, 10**6), f.tag)):
                gf = go_fields.get(pf.tag)
                inline = False
                omit_zero = False
                if gf is not None:
                    check_go_agrees(full, pf, gf)
                    if gf.skip and shape == "Object":
                        stats["skipped"] += 1
                        continue
                    inline = gf.inline
                    json_name = "" if inline else (gf.json or gf.proto_name)
                    omit_zero = pf.kind in SCALAR_KINDS and pf.label == "Opt" and gf.omitempty and not gf.pointer
                    stats["go"] += 1
                    if oa and not inline and shape == "Object" and json_name not in oa.properties:
                        warnings.append(f"{full}.{json_name}: not an OpenAPI property of {oa.name}")
                elif norm(pf.name) in oa_by_norm:
                    json_name = oa_by_norm[norm(pf.name)]
                    stats["openapi"] += 1
                else:
                    json_name = camel_fallback(pf.name)
                    stats["fallback"] += 1
                    if shape == "Object":
                        warnings.append(f"{full}.{pf.name} (tag {pf.tag}): no Go/OpenAPI name, using {json_name}")
                if inline and pf.kind != "message":
                    fail(f"{full}.{pf.name}: inline non-message field")
                stats["omit_zero"] += omit_zero
                stats["inline"] += inline
                type_ref = ""
                if pf.type_ref:
                    if pf.type_ref not in canonical:
                        fail(f"{full}.{pf.name}: references {pf.type_ref}, outside the served packages")
                    type_ref = canonical[pf.type_ref]
                kind = "Msg" if pf.kind == "message" else SCALAR_KINDS.get(pf.kind)
                if kind is None:
                    fail(f"{full}.{pf.name}: unsupported kind {pf.kind}")
                rows.append((pf.tag, json_name, kind, pf.label, type_ref, omit_zero))
            out_messages.append((full, shape, rows))

    out_messages.sort(key=lambda m: m[0])
    names = [m[0] for m in out_messages]
    if len(set(names)) != len(names):
        fail("duplicate message names")

    group_versions = {}
    for pkg, gvs in packages.items():
        for gv in gvs:
            if gv in group_versions and group_versions[gv] != pkg:
                fail(f"{gv} maps to {group_versions[gv]} and {pkg}")
            group_versions[gv] = pkg
    group_versions["meta.k8s.io/v1"] = META

    write_table(args, pb_root, oa_root, out_messages, group_versions)
    for w in warnings:
        print(f"note: {w}", file=sys.stderr)
    n_fields = sum(len(m[2]) for m in out_messages)
    print(f"{len(out_messages)} messages, {n_fields} fields, {len(group_versions)} group-versions; "
          f"JSON names from Go {stats['go']}, OpenAPI {stats['openapi']}, fallback {stats['fallback']}; "
          f"omit-zero {stats['omit_zero']}, inline {stats['inline']}, json:\"-\" skipped {stats['skipped']}",
          file=sys.stderr)


def rust_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_table(args, pb_root, oa_root, messages, group_versions) -> None:
    lines = [
        "// @generated by hack/gen-protobuf-schema.py. Do not edit; regenerate (see the crate docs).",
        f"// Sources: {os.path.basename(pb_root)} (tags, kinds, labels), "
        f"{os.path.basename(os.path.dirname(os.path.dirname(oa_root)))} v1_33 (JSON names, served groups),",
        f"// k8s.io/{{api,apimachinery,apiextensions-apiserver,kube-aggregator}} {args.go_version} "
        "struct tags (JSON names, omitempty, pointers, inline).",
        "",
        "use crate::schema::{f, z, Kind::*, Label::*, MessageDef, Shape::*};",
        "",
        "/// Group-version (`apiVersion`) -> proto package, sorted by group-version.",
        "#[rustfmt::skip]",
        "pub(crate) static GROUP_VERSIONS: &[(&str, &str)] = &[",
    ]
    for gv in sorted(group_versions):
        lines.append(f"    ({rust_str(gv)}, {rust_str(group_versions[gv])}),")
    lines += ["];", "", "/// Every message, sorted by full name; fields in Go struct order.", "#[rustfmt::skip]",
              "pub(crate) static MESSAGES: &[MessageDef] = &["]
    for full, shape, rows in messages:
        if not rows:
            lines.append(f"    MessageDef {{ name: {rust_str(full)}, shape: {shape}, fields: &[] }},")
            continue
        lines.append(f"    MessageDef {{ name: {rust_str(full)}, shape: {shape}, fields: &[")
        for tag, json_name, kind, label, type_ref, omit_zero in rows:
            if omit_zero:
                lines.append(f"        z({tag}, {rust_str(json_name)}, {kind}),")
            else:
                lines.append(f"        f({tag}, {rust_str(json_name)}, {kind}, {label}, {rust_str(type_ref)}),")
        lines.append("    ] },")
    lines.append("];")
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
