"""A small, strict kustomize renderer for the manifests under deploy/kubernetes.

It implements exactly the kustomization features those manifests use, with kustomize's
semantics, and refuses everything else with `UnsupportedKustomization`, so a manifest can never
lean on a feature that is silently rendered differently here than by `kubectl apply -k`:

- `resources`: local YAML files (one or more documents) and local directories (kustomizations);
- `namespace`: set on every namespaced object;
- `configMapGenerator` / `secretGenerator`: `literals` only, `behavior` create, merge or replace;
  the generated names get kustomize's content-hash suffix, and the references to them from pod
  templates are rewritten to match;
- `patches`: `path` to one strategic-merge document, applied to the object of the same kind and
  name; maps merge recursively and `null` deletes a field, lists are refused (their merge rules
  differ per field);
- `labels`: `pairs` added to every object's labels, and to pod templates with `includeTemplates`;
  never to selectors;
- `images`: `newName` and `newTag` for containers and init containers.

Only the object kinds listed in `KINDS` are accepted: for each of them the renderer knows
whether it is namespaced and where its pod template is.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]

KUSTOMIZATION_API = "kustomize.config.k8s.io/v1beta1"
KUSTOMIZATION_FILE = "kustomization.yaml"
OTHER_KUSTOMIZATION_FILES = ("kustomization.yml", "Kustomization")

# apiVersion and kind -> (namespaced, path to the pod template or None)
KINDS: dict[tuple[str, str], tuple[bool, tuple[str, ...] | None]] = {
    ("v1", "Namespace"): (False, None),
    ("v1", "ServiceAccount"): (True, None),
    ("v1", "ConfigMap"): (True, None),
    ("v1", "Secret"): (True, None),
    ("v1", "Service"): (True, None),
    ("apps/v1", "Deployment"): (True, ("spec", "template")),
    ("batch/v1", "Job"): (True, ("spec", "template")),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): (True, None),
    ("policy/v1", "PodDisruptionBudget"): (True, None),
}

KUSTOMIZATION_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "configMapGenerator",
    "secretGenerator",
    "patches",
    "labels",
    "images",
}
GENERATOR_KEYS = {"name", "behavior", "literals"}
GENERATOR_BEHAVIORS = ("create", "merge", "replace")
LABELS_KEYS = {"pairs", "includeSelectors", "includeTemplates"}
IMAGE_KEYS = {"name", "newName", "newTag"}
PATCH_KEYS = {"path"}
# Volume sources a pod may use here: the renderer rewrites generated names in the latter two.
VOLUME_SOURCES = {"emptyDir", "configMap", "secret"}
BASE64_LINE = 70


class UnsupportedKustomization(ValueError):
    """The kustomization uses something this renderer does not implement (or is invalid)."""


def render(directory: Path) -> list[Object]:
    """Render the kustomization in `directory` as `kubectl kustomize` would (object order
    aside)."""
    built = _build(Path(directory).resolve(), stack=())
    built.finish()
    return built.objects


def object_key(obj: Object) -> tuple[str, str, str]:
    """(kind, namespace, name): unique within one rendering."""
    metadata = obj["metadata"]
    return obj["kind"], metadata.get("namespace", ""), metadata["name"]


def pod_template(obj: Object) -> Object | None:
    """The pod template of a workload, or None for other kinds."""
    _, path = _kind_info(obj)
    if path is None:
        return None
    node: Any = obj
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        raise UnsupportedKustomization(f"{_describe(obj)} has no {'.'.join(path)}")
    return node


def pod_containers(pod_spec: Object) -> Iterator[Object]:
    """Init containers, then containers."""
    for list_name in ("initContainers", "containers"):
        yield from pod_spec.get(list_name) or []


@dataclass
class _Built:
    objects: list[Object] = field(default_factory=list)
    # (kind, name) of the objects made by a generator: they get a hash suffix at the end.
    generated: set[tuple[str, str]] = field(default_factory=set)

    def find(self, kind: str, name: str) -> Object | None:
        found = [o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name]
        if len(found) > 1:
            raise UnsupportedKustomization(f"several {kind} objects named {name!r}")
        return found[0] if found else None

    def add(self, obj: Object, source: str) -> None:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if self.find(kind, name) is not None:
            raise UnsupportedKustomization(f"{source}: {kind} {name!r} is defined twice")
        self.objects.append(obj)

    def extend(self, other: _Built, source: str) -> None:
        for obj in other.objects:
            self.add(obj, source)
        self.generated |= other.generated

    def finish(self) -> None:
        """Append the content hash to generated names and point the references at them."""
        renamed: dict[tuple[str, str], str] = {}
        for obj in self.objects:
            kind, name = obj["kind"], obj["metadata"]["name"]
            if (kind, name) in self.generated:
                renamed[kind, name] = f"{name}-{_content_hash(obj)}"
                obj["metadata"]["name"] = renamed[kind, name]
        for obj in self.objects:
            template = pod_template(obj)
            if template is not None:
                _rename_references(obj, template.get("spec") or {}, renamed)


def _build(directory: Path, stack: tuple[Path, ...]) -> _Built:
    if directory in stack:
        raise UnsupportedKustomization(f"{directory} includes itself")
    for other in OTHER_KUSTOMIZATION_FILES:
        if (directory / other).exists():
            raise UnsupportedKustomization(f"{directory / other}: name it {KUSTOMIZATION_FILE}")
    path = directory / KUSTOMIZATION_FILE
    kustomization = yaml.safe_load(path.read_text())
    if not isinstance(kustomization, dict):
        raise UnsupportedKustomization(f"{path}: not a mapping")
    unknown = set(kustomization) - KUSTOMIZATION_KEYS
    if unknown:
        raise UnsupportedKustomization(f"{path}: unsupported keys {sorted(unknown)}")
    if kustomization.get("apiVersion", KUSTOMIZATION_API) != KUSTOMIZATION_API:
        raise UnsupportedKustomization(f"{path}: apiVersion must be {KUSTOMIZATION_API}")
    if kustomization.get("kind", "Kustomization") != "Kustomization":
        raise UnsupportedKustomization(f"{path}: kind must be Kustomization")

    built = _Built()
    for entry in _list(kustomization, "resources", path):
        if not isinstance(entry, str) or "://" in entry:
            raise UnsupportedKustomization(f"{path}: only local resources, got {entry!r}")
        target = (directory / entry).resolve()
        if target.is_dir():
            built.extend(_build(target, (*stack, directory)), str(path))
        elif target.is_file():
            for obj in _load_objects(target):
                built.add(obj, str(target))
        else:
            raise UnsupportedKustomization(f"{path}: resource {entry!r} does not exist")

    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for generator in _list(kustomization, key, path):
            _generate(built, kind, generator, f"{path} {key}")

    # The order of kustomize's built-in transformers: patches, namespace, labels, images.
    for entry in _list(kustomization, "patches", path):
        _apply_patch(built, directory, entry, path)
    namespace = kustomization.get("namespace")
    if namespace is not None:
        _set_namespace(built, namespace, path)
    for entry in _list(kustomization, "labels", path):
        _add_labels(built, entry, path)
    for entry in _list(kustomization, "images", path):
        _set_image(built, entry, path)
    return built


def _list(kustomization: Object, key: str, path: Path) -> list[Any]:
    value = kustomization.get(key) or []
    if not isinstance(value, list):
        raise UnsupportedKustomization(f"{path}: {key} must be a list")
    return value


def _keys(entry: Any, allowed: set[str], where: str) -> Object:
    if not isinstance(entry, dict):
        raise UnsupportedKustomization(f"{where}: expected a mapping, got {entry!r}")
    unknown = set(entry) - allowed
    if unknown:
        raise UnsupportedKustomization(f"{where}: unsupported keys {sorted(unknown)}")
    return entry


def _load_objects(path: Path) -> Iterable[Object]:
    for document in yaml.safe_load_all(path.read_text()):
        if document is None:
            continue
        if not isinstance(document, dict) or not isinstance(document.get("metadata"), dict):
            raise UnsupportedKustomization(f"{path}: every document must be an object")
        if not document["metadata"].get("name"):
            raise UnsupportedKustomization(f"{path}: an object without metadata.name")
        _kind_info(document)
        yield document


def _kind_info(obj: Object) -> tuple[bool, tuple[str, ...] | None]:
    info = KINDS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
    if info is None:
        raise UnsupportedKustomization(
            f"{obj.get('apiVersion')} {obj.get('kind')} is not known to this renderer: add it "
            "to KINDS (with its scope and pod template) before using it"
        )
    return info


def _describe(obj: Object) -> str:
    return f"{obj.get('kind')} {obj.get('metadata', {}).get('name')!r}"


def _literals(generator: Object, where: str) -> dict[str, str]:
    data: dict[str, str] = {}
    for literal in generator.get("literals") or []:
        if not isinstance(literal, str) or "=" not in literal:
            raise UnsupportedKustomization(f"{where}: a literal must be KEY=VALUE")
        key, _, value = literal.partition("=")
        if not key or value[:1] in ("'", '"'):
            # kustomize strips matching quotes around a value; keep values unquoted instead.
            raise UnsupportedKustomization(f"{where}: empty key or quoted value in {literal!r}")
        if key in data:
            raise UnsupportedKustomization(f"{where}: {key} is given twice")
        data[key] = value
    return data


def _generate(built: _Built, kind: str, generator: Any, where: str) -> None:
    generator = _keys(generator, GENERATOR_KEYS, where)
    name = generator.get("name")
    if not name:
        raise UnsupportedKustomization(f"{where}: a generator needs a name")
    behavior = generator.get("behavior", "create")
    if behavior not in GENERATOR_BEHAVIORS:
        raise UnsupportedKustomization(f"{where}: behavior {behavior!r}")
    data = _literals(generator, f"{where} {name}")
    if kind == "Secret":
        data = {k: _secret_value(v) for k, v in data.items()}
    existing = built.find(kind, name)
    if behavior == "create":
        obj: Object = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}
        if data:
            obj["data"] = data
        if kind == "Secret":
            obj["type"] = "Opaque"
        built.add(obj, where)
        built.generated.add((kind, name))
        return
    if existing is None or (kind, name) not in built.generated:
        raise UnsupportedKustomization(f"{where}: {behavior} needs a generated {kind} {name!r}")
    merged = {**existing.get("data", {}), **data} if behavior == "merge" else data
    if merged:
        existing["data"] = merged
    else:
        existing.pop("data", None)


def _secret_value(value: str) -> str:
    """Base64 as kustomize writes it: past one line of 70 characters, cut into such lines, each
    ending with a newline (which base64 decoders skip). The hash is taken over this text."""
    encoded = base64.b64encode(value.encode()).decode()
    if len(encoded) < BASE64_LINE:
        return encoded
    return "".join(encoded[i : i + BASE64_LINE] + "\n" for i in range(0, len(encoded), BASE64_LINE))


def _content_hash(obj: Object) -> str:
    """kustomize's name suffix: a digest of the kind, the data (and a Secret's type) taken as
    sorted, compact JSON with Go's HTML escaping. The object's name does not enter it: kustomize
    looks it up under a key that never exists, so it always hashes an empty name."""
    encoded: Object = {"kind": obj["kind"], "name": "", "data": obj.get("data", "")}
    if obj["kind"] == "Secret":
        encoded["type"] = obj.get("type", "")
    text = json.dumps(encoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    # Letters instead of some digits and vowels, so a suffix never spells a word or a number.
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _apply_patch(built: _Built, directory: Path, entry: Any, path: Path) -> None:
    entry = _keys(entry, PATCH_KEYS, f"{path} patches")
    patch_path = (directory / entry["path"]).resolve()
    documents = [d for d in yaml.safe_load_all(patch_path.read_text()) if d is not None]
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise UnsupportedKustomization(f"{patch_path}: a patch file holds exactly one object")
    patch = documents[0]
    name = (patch.get("metadata") or {}).get("name")
    target = built.find(patch.get("kind", ""), name or "")
    if target is None or target.get("apiVersion") != patch.get("apiVersion"):
        raise UnsupportedKustomization(f"{patch_path}: no {_describe(patch)} to patch")
    _merge(target, patch, str(patch_path))


def _merge(target: Object, patch: Object, where: str) -> None:
    for key, value in patch.items():
        if key.startswith("$"):
            raise UnsupportedKustomization(f"{where}: patch directive {key!r}")
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            if not isinstance(target.get(key), dict):
                target[key] = {}
            _merge(target[key], value, f"{where}: {key}")
        elif isinstance(value, list):
            raise UnsupportedKustomization(
                f"{where}: {key} is a list; list merges are not supported (patch a map field)"
            )
        else:
            target[key] = copy.deepcopy(value)


def _set_namespace(built: _Built, namespace: str, path: Path) -> None:
    for obj in built.objects:
        namespaced, _ = _kind_info(obj)
        if namespaced:
            obj["metadata"]["namespace"] = namespace
        elif obj["kind"] == "Namespace" and obj["metadata"]["name"] != namespace:
            raise UnsupportedKustomization(
                f"{path}: Namespace {obj['metadata']['name']!r} differs from {namespace!r}"
            )


def _add_labels(built: _Built, entry: Any, path: Path) -> None:
    entry = _keys(entry, LABELS_KEYS, f"{path} labels")
    if entry.get("includeSelectors"):
        raise UnsupportedKustomization(f"{path}: labels with includeSelectors")
    pairs = entry.get("pairs") or {}
    if not isinstance(pairs, dict) or not all(isinstance(v, str) for v in pairs.values()):
        raise UnsupportedKustomization(f"{path}: label pairs must map names to strings")
    for obj in built.objects:
        targets = [obj]
        template = pod_template(obj)
        if entry.get("includeTemplates") and template is not None:
            targets.append(template)
        for target in targets:
            metadata = target.setdefault("metadata", {})
            metadata["labels"] = {**(metadata.get("labels") or {}), **pairs}


def split_image(image: str) -> tuple[str, str]:
    """('registry:5000/name', ':tag' or '@sha256:...' or '')."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, "@" + digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def _set_image(built: _Built, entry: Any, path: Path) -> None:
    entry = _keys(entry, IMAGE_KEYS, f"{path} images")
    matched = False
    for obj in built.objects:
        template = pod_template(obj)
        if template is None:
            continue
        for container in pod_containers(template.get("spec") or {}):
            name, reference = split_image(container.get("image", ""))
            if name != entry["name"]:
                continue
            matched = True
            if "newTag" in entry:
                reference = f":{entry['newTag']}"
            container["image"] = entry.get("newName", name) + reference
    if not matched:  # kustomize ignores it silently; a typo here would ship the wrong image
        raise UnsupportedKustomization(f"{path}: image {entry['name']!r} matches no container")


def _rename_references(obj: Object, pod_spec: Object, renamed: dict[tuple[str, str], str]) -> None:
    def rename(ref: Object | None, kind: str, key: str = "name") -> None:
        if ref is not None and (kind, ref.get(key)) in renamed:
            ref[key] = renamed[kind, ref[key]]

    if pod_spec.get("imagePullSecrets"):
        raise UnsupportedKustomization(f"{_describe(obj)}: imagePullSecrets")
    for volume in pod_spec.get("volumes") or []:
        sources = set(volume) - {"name"}
        if not sources <= VOLUME_SOURCES:
            raise UnsupportedKustomization(f"{_describe(obj)}: volume source {sorted(sources)}")
        rename(volume.get("configMap"), "ConfigMap")
        rename(volume.get("secret"), "Secret", "secretName")
    for container in pod_containers(pod_spec):
        for source in container.get("envFrom") or []:
            rename(source.get("configMapRef"), "ConfigMap")
            rename(source.get("secretRef"), "Secret")
        for variable in container.get("env") or []:
            value_from = variable.get("valueFrom") or {}
            rename(value_from.get("configMapKeyRef"), "ConfigMap")
            rename(value_from.get("secretKeyRef"), "Secret")
